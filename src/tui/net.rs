//! The network worker: everything the cockpit asks the principal happens here, off the draw
//! loop, and comes back as [`Event`]s. A principal that is slow, stopped or restarting never
//! freezes the screen.
//!
//! Idle it sends one small `status` request a second: its `changes` and `catalog` counters
//! say whether any list changed, and lists are read again only when one moved (the agents
//! list also every few seconds while the agents view is open, for heartbeat ages). A
//! followed run's output is read from the store from a cursor, each time the live stream
//! rings (or every two seconds), so lines come in order, none twice and none missed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use super::app::{Action, Command, Event};
use crate::protocol::logs::topic_prefix;
use crate::transport::{Client, ClientError, LogQuery};

/// Between two status requests.
pub const POLL: Duration = Duration::from_secs(1);
/// Newest runs listed.
pub const RUNS: u32 = 500;
/// How often the agents list is read while the agents view is open.
const AGENTS_EVERY: Duration = Duration::from_secs(5);
/// Lines read in one request: the end of a run's output when it is opened, and each page
/// back from there.
const PAGE: u32 = 5000;
/// Output is read at most this often while lines pour in.
const LOGS_EVERY: Duration = Duration::from_millis(100);

/// What the screen shows that the poller keeps fresh.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Focus {
    pub run: Option<String>,
    pub schedule: Option<String>,
    pub agents: bool,
}

pub struct Worker {
    client: Client,
    tx: mpsc::UnboundedSender<Action>,
    focus: watch::Sender<Focus>,
    poke: Arc<Notify>,
    logs: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the poller; commands go through [`Worker::handle`].
    pub fn start(client: Client, tx: mpsc::UnboundedSender<Action>) -> Worker {
        let (focus, watched) = watch::channel(Focus::default());
        let poke = Arc::new(Notify::new());
        tokio::spawn(poll(client.clone(), tx.clone(), watched, poke.clone()));
        Worker {
            client,
            tx,
            focus,
            poke,
            logs: None,
        }
    }

    /// Shows the agents view (its list is then refreshed for heartbeat ages).
    pub fn agents_shown(&self, shown: bool) {
        self.focus.send_if_modified(|f| {
            let changed = f.agents != shown;
            f.agents = shown;
            changed
        });
    }

    pub fn handle(&mut self, command: Command) {
        let (client, tx, poke) = (self.client.clone(), self.tx.clone(), self.poke.clone());
        match command {
            Command::WatchRun(run) => {
                self.focus.send_modify(|f| f.run = run);
                self.poke.notify_one();
            }
            Command::WatchSchedule(schedule) => {
                self.focus.send_modify(|f| f.schedule = schedule);
                self.poke.notify_one();
            }
            Command::FollowLogs(run) => {
                if let Some(previous) = self.logs.take() {
                    previous.abort();
                }
                self.logs = run.map(|run| tokio::spawn(follow(client, tx, run)));
            }
            Command::LogsBefore { run, before } => {
                tokio::spawn(async move {
                    let event = match client.logs_before(&run, Some(before), PAGE).await {
                        Ok(lines) => {
                            let more = lines.len() == PAGE as usize;
                            Event::Earlier { run, lines, more }
                        }
                        Err(e) => Event::Done(Err(format!("earlier lines of {run}: {e}"))),
                    };
                    let _ = tx.send(Action::Net(event));
                });
            }
            Command::Query(sql) => {
                tokio::spawn(async move {
                    let result = client.query(&sql, None, None).await;
                    let _ = tx.send(Action::Net(Event::Query(result.map_err(|e| e.to_string()))));
                });
            }
            Command::Copy(_) => {}
            action => {
                tokio::spawn(async move {
                    let outcome = act(&client, action).await.map_err(|e| e.to_string());
                    match &outcome {
                        Ok(done) => tracing::info!("{done}"),
                        Err(e) => tracing::warn!("{e}"),
                    }
                    let _ = tx.send(Action::Net(Event::Done(outcome)));
                    poke.notify_one();
                });
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(logs) = self.logs.take() {
            logs.abort();
        }
    }
}

/// An action's request; Ok is the status line's message.
async fn act(client: &Client, action: Command) -> Result<String, ClientError> {
    Ok(match action {
        Command::Trigger { workflow, params } => {
            let run = client.trigger(&workflow, params, "tui").await?;
            format!("triggered {workflow}: run {run}")
        }
        Command::Cancel(run) => {
            let (status, _, note) = client
                .cancel(&run, Some("cancelled from the cockpit".into()))
                .await?;
            format!("{run}: {status} ({note})")
        }
        Command::Rerun { run, failed_only } => {
            let new = client
                .rerun(&run, failed_only, false, Default::default())
                .await?;
            let what = if failed_only { "failed tasks of " } else { "" };
            format!("rerun of {what}{run} queued: run {new}")
        }
        Command::Pause { workflow, paused } => {
            client.set_paused(&workflow, paused).await?;
            let done = if paused { "paused" } else { "resumed" };
            format!("{done} the schedule of {workflow}")
        }
        Command::Reload => {
            let r = client.reload().await?;
            format!("reloaded: {} workflows, {} invalid", r.valid, r.invalid)
        }
        other => format!("{other:?}"),
    })
}

/// Polls `status` and reads a list again when its counter moved.
async fn poll(
    client: Client,
    tx: mpsc::UnboundedSender<Action>,
    mut focus: watch::Receiver<Focus>,
    poke: Arc<Notify>,
) {
    let send = |event: Event| tx.send(Action::Net(event)).is_ok();
    // The counters of the last complete read, and what was fetched for the focus.
    let mut seen: Option<(u64, u64, u64)> = None;
    // The principal's warnings read so far (their count), and whether it answered last.
    let mut warnings: Option<u64> = None;
    let mut up = false;
    let mut shown = Focus::default();
    let mut agents_at = Instant::now();
    loop {
        let want = focus.borrow_and_update().clone();
        match client.status().await {
            Err(e) => {
                if up {
                    tracing::warn!("lost the principal: {e}");
                    up = false;
                }
                seen = None;
                if !send(Event::Lost(e.to_string())) {
                    return;
                }
            }
            Ok(status) => {
                if !up {
                    tracing::info!(
                        "connected to {}: principal {} up {}s",
                        client.endpoint(),
                        status.version,
                        status.uptime_secs
                    );
                    up = true;
                }
                // A restarted principal counts from zero again: its uptime went back.
                let key = (status.changes, status.catalog, status.uptime_secs);
                let restarted = seen.is_none_or(|s| key.2 < s.2);
                let lists = restarted || seen.is_some_and(|s| s.0 != key.0);
                let catalog = restarted || seen.is_some_and(|s| s.1 != key.1);
                if restarted || status.warnings < warnings.unwrap_or(0) {
                    warnings = None;
                }
                let logged = status.warnings;
                if !send(Event::Status(Box::new(status))) {
                    return;
                }
                let result =
                    refresh(&client, &send, &want, &shown, lists, catalog, restarted).await;
                match result {
                    Ok(()) => {
                        let agents_due = want.agents && agents_at.elapsed() >= AGENTS_EVERY;
                        if agents_due || lists {
                            agents_at = Instant::now();
                        }
                        if agents_due && !lists {
                            if let Ok(agents) = client.agents().await {
                                send(Event::Agents(agents));
                            }
                        }
                        seen = Some(key);
                        shown = want;
                        if warnings != Some(logged) {
                            // The kept ones after those read (all of them the first time).
                            let after = warnings.filter(|w| *w > 0);
                            if let Ok(notices) = client.warnings(after).await {
                                send(Event::Warnings(notices));
                                warnings = Some(logged);
                            }
                        }
                    }
                    Err(e) => {
                        seen = None;
                        send(Event::Lost(e.to_string()));
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = poke.notified() => {}
            _ = focus.changed() => {}
        }
    }
}

/// Reads what changed: the lists when `lists`, the workflows when `catalog`, the focused
/// run and schedule when they changed or the lists did.
async fn refresh(
    client: &Client,
    send: &impl Fn(Event) -> bool,
    want: &Focus,
    shown: &Focus,
    lists: bool,
    catalog: bool,
    restarted: bool,
) -> Result<(), ClientError> {
    if restarted {
        let (_, role, _) = client.whoami().await?;
        send(Event::Role(role));
    }
    if lists {
        send(Event::Runs(client.runs(None, None, RUNS).await?));
        send(Event::Agents(client.agents().await?));
        send(Event::Schedules(client.schedules().await?));
    }
    if catalog {
        send(Event::Workflows(Box::new(client.workflows().await?)));
    }
    if let Some(run) = &want.run {
        if lists || want.run != shown.run {
            match client.run(run).await {
                Ok(detail) => {
                    send(Event::Detail(Box::new(detail)));
                }
                Err(ClientError::Remote(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(workflow) = &want.schedule {
        if lists || want.schedule != shown.schedule {
            let slots = client.slot_history(workflow, 50).await?;
            send(Event::Slots(workflow.clone(), slots));
        }
    }
    Ok(())
}

/// Follows one run's output: every stored line from the start, then new ones as the live
/// stream rings, until the run has ended and its last lines are read.
async fn follow(client: Client, tx: mpsc::UnboundedSender<Action>, run: String) {
    let send = |event: Event| tx.send(Action::Net(event)).is_ok();
    let outcome = async {
        let detail = client.run(&run).await?;
        let workflow = detail.summary.workflow_id.to_string();
        let mut ended = detail.summary.status.is_terminal();
        // Subscribed before the first read: nothing printed after it is missed.
        let mut live = match ended {
            true => None,
            false => client
                .subscribe(&topic_prefix(Some(&workflow), Some(&run), None))
                .await
                .ok(),
        };
        let query = LogQuery::Run {
            run_id: run.clone(),
            task: None,
        };
        // The newest lines first: a long output opens at its end, older pages come on scroll.
        let tail = client.logs_before(&run, None, PAGE).await?;
        let mut cursor = tail.last().map(|l| l.id);
        send(Event::Lines {
            run: run.clone(),
            workflow: Some(workflow.clone()),
            earlier: tail.len() == PAGE as usize,
            lines: tail,
            complete: false,
        });
        loop {
            loop {
                let page = client.logs(&query, cursor).await?;
                let Some(last) = page.lines.last().map(|l| l.id) else {
                    break;
                };
                cursor = Some(last);
                let more = page.next.is_some();
                send(Event::Lines {
                    run: run.clone(),
                    workflow: Some(workflow.clone()),
                    lines: page.lines,
                    complete: false,
                    earlier: false,
                });
                if !more {
                    break;
                }
            }
            if ended {
                send(Event::Lines {
                    run: run.clone(),
                    workflow: Some(workflow.clone()),
                    lines: Vec::new(),
                    complete: true,
                    earlier: false,
                });
                return Ok::<(), ClientError>(());
            }
            let rang = match &mut live {
                Some(sub) => tokio::time::timeout(Duration::from_secs(2), sub.next())
                    .await
                    .is_ok(),
                None => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    false
                }
            };
            if rang {
                tokio::time::sleep(LOGS_EVERY).await;
                if let Some(sub) = &mut live {
                    sub.discard_waiting();
                }
            }
            ended = client.run(&run).await?.summary.status.is_terminal();
        }
    };
    if let Err(e) = outcome.await {
        tracing::warn!("logs of {run}: {e}");
        send(Event::Done(Err(format!("logs of {run}: {e}"))));
    }
}
