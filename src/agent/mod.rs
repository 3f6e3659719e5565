//! The agent daemon: registers with the principal, heartbeats, pulls runs only when it has a
//! free slot, runs each run's task DAG and reports every status change and output line.
//!
//! - [`runner`]: the DAG of one run;
//! - [`executor`]: one task as a child process;
//! - [`output`]: output streams to lines;
//! - [`reporter`]: numbering, batching and resending records until acknowledged.

pub mod executor;
pub mod output;
pub mod reporter;
pub mod runner;
pub mod spool;
pub mod stop;
mod stopping;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AgentConfig;
use crate::model::{AgentId, RunId};
use crate::protocol::agent::{
    AgentInfo, AgentReply, AgentRequest, Assignment, AttemptRef, StopOrder,
};
use crate::protocol::{ErrorCode, Request, Response};
use crate::transport::{Client, ClientError};
use reporter::Reporter;

/// How long a request to the principal may take before the connection is presumed dead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a shutting-down agent waits for its runs to end and its records to be stored.
const DRAIN_LIMIT: Duration = Duration::from_secs(15);

/// The agent's identity: `name@host`, the name defaulting to the host name.
pub fn identity(config: &AgentConfig) -> AgentInfo {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let name = if config.name.is_empty() {
        host.clone()
    } else {
        config.name.clone()
    };
    AgentInfo {
        id: AgentId::from_parts(&name, &host),
        name,
        host,
        slots: u32::try_from(config.max_concurrent_workflows).unwrap_or(u32::MAX),
        labels: crate::model::Label::to_map(&config.labels),
        version: env!("CARGO_PKG_VERSION").into(),
        instance: ulid::Ulid::new().to_string(),
    }
}

/// Attempts running here, shared by the pull loop, the runs and the heartbeat.
#[derive(Clone, Default)]
struct Running {
    inner: Arc<Mutex<HashMap<RunId, AttemptRef>>>,
    /// Each running attempt's stop signal, for the principal's stop orders (cancels).
    stops: Arc<Mutex<HashMap<RunId, stop::RunStop>>>,
    /// Wakes the heartbeat when a slot frees, so the principal learns it at once and fills
    /// the poll that is waiting.
    beat: Arc<Notify>,
    /// Set once the agent stops taking work (shutdown): it then reports no free slot.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl Running {
    /// Slots free for new work: none once closed.
    fn free(&self, slots: u32) -> u32 {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return 0;
        }
        slots.saturating_sub(u32::try_from(self.len()).unwrap_or(u32::MAX))
    }
    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
    }
    fn list(&self) -> Vec<AttemptRef> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    fn insert(&self, a: AttemptRef) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(a.run_id.clone(), a);
    }
    fn remove(&self, run: &RunId) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run);
        self.stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run);
        self.beat.notify_one();
    }

    fn set_stop(&self, run: &RunId, stop: stop::RunStop) {
        self.stops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run.clone(), stop);
    }

    /// Stops the attempts the principal ordered to stop (runs cancelled there); an order for
    /// another attempt of a run, or a run not here, is ignored.
    fn obey(&self, orders: Vec<StopOrder>) {
        for order in orders {
            let current = self
                .inner
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&order.run_id)
                .is_some_and(|a| a.attempt == order.attempt && a.token == order.token);
            let stop = self
                .stops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&order.run_id)
                .cloned();
            if let (true, Some(stop)) = (current, stop) {
                // The principal repeats the order until the run has ended: say it once.
                let reason = order.reason.clone();
                if stop.stop(stop::StopCause::Cancelled(order.reason)) {
                    tracing::info!(run = %order.run_id, %reason, "stopping the run");
                }
            }
        }
    }
}

/// What the agent tells its caller: that it runs, before it registers (which waits as long as
/// the principal is unreachable), then that it registered (with its metrics address).
pub struct Hooks<S, R> {
    pub started: S,
    pub registered: R,
}

/// Runs the agent until `shutdown`; then takes no more work, stops its running tasks
/// (SIGTERM, then SIGKILL after a grace period), reports their final states and deregisters.
pub async fn run(
    config: AgentConfig,
    shutdown: CancellationToken,
    hooks: Hooks<impl FnOnce(), impl FnOnce(&AgentId, Option<std::net::SocketAddr>)>,
) -> Result<(), String> {
    let info = identity(&config);
    let agent_id = info.id.clone();
    let credential = match crate::auth::Credential::optional(&config.credential) {
        Ok(c) => c,
        Err(e) => return Err(format!("cannot read the agent's credential: {e}")),
    };
    let client = Client::connect_as(&config.principal, REQUEST_TIMEOUT, credential);
    let reporter_stop = CancellationToken::new();
    let spool = spool::Spool::new(
        config.data_dir.join(format!(
            "spool-{}.jsonl",
            agent_id.as_str().replace(['/', '\\'], "_")
        )),
        config.max_buffered_records,
    );
    let reporter = Reporter::spawn(
        client.clone(),
        agent_id.clone(),
        spool,
        reporter_stop.clone(),
    );
    let running = Running::default();
    let runs_cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let metrics_stop = CancellationToken::new();
    let _stop_metrics = metrics_stop.clone().drop_guard();
    let metrics = match config.metrics_listen.as_str() {
        "" => None,
        address => {
            let refresh = stopping::gauges(reporter.clone(), running.clone(), info.slots);
            let served =
                crate::runtime::metrics::bind_and_serve(address, refresh, metrics_stop).await;
            Some(served.map_err(|e| e.to_string())?)
        }
    };

    (hooks.started)();
    let Some(suggested) = register(&client, &info, &running, &shutdown).await else {
        return Ok(());
    };
    // Beat at least as often as the principal asks, so its timeout never fires on a live agent.
    let interval = config.heartbeat_interval.min(suggested);
    tracing::info!(agent = %agent_id, principal = %config.principal, slots = info.slots, "registered");
    (hooks.registered)(&agent_id, metrics);

    let reregister = Arc::new(Notify::new());
    // Counts the heartbeat's registrations. One during a pull (the principal restarted) means
    // the pull waiting at the old principal will never be answered: a new one goes out at once.
    let (registered, mut registrations) = tokio::sync::watch::channel(0u64);
    // Beats until deregistration (not just until shutdown starts): draining can take longer
    // than the principal's timeout, and a silent agent would have its runs crashed.
    let heartbeat_stop = CancellationToken::new();
    let heartbeat_task = tokio::spawn(heartbeat(
        client.clone(),
        info.clone(),
        (running.clone(), reporter.clone()),
        interval,
        (reregister.clone(), registered),
        heartbeat_stop.clone(),
    ));

    loop {
        // A poll is kept waiting even with no slot free: the principal answers it with stop
        // orders (cancels) at once, and its heartbeats tell it when a slot frees.
        let free = running.free(info.slots);
        // Registrations before this pull are for it; only one during it abandons it.
        registrations.borrow_and_update();
        let request = Request::Agent(AgentRequest::PullWork {
            agent_id: agent_id.clone(),
            free_slots: free,
        });
        let reply = tokio::select! {
            r = client.request_within(request, Duration::from_secs(60)) => r,
            Ok(()) = registrations.changed() => continue,
            _ = shutdown.cancelled() => break,
        };
        match reply {
            Ok(Response::Agent(AgentReply::Work { assignments, stop })) => {
                running.obey(stop);
                for a in assignments {
                    start_run(a, &agent_id, &reporter, &running, &runs_cancel, &tracker);
                }
            }
            Err(ClientError::Remote(e)) if e.code == ErrorCode::Invalid => {
                // The principal does not know us (it restarted): register again.
                reregister.notify_one();
                pause(&shutdown, Duration::from_millis(200)).await;
            }
            Ok(other) => {
                tracing::warn!(?other, "unexpected reply to a work request");
                pause(&shutdown, Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "work request failed");
                pause(&shutdown, Duration::from_millis(500)).await;
            }
        }
    }

    running.close();
    tracing::info!(runs = running.len(), "shutting down: taking no more work");
    // A pull may still be waiting at the principal: tell it nothing is free before draining.
    let _ = client
        .request(Request::Agent(AgentRequest::Heartbeat {
            agent_id: agent_id.clone(),
            running: running.list(),
            free_slots: 0,
            spool: reporter.unacknowledged(),
        }))
        .await;
    tracker.close();
    stopping::end_runs(&config, &running, &runs_cancel, &tracker).await;
    if !reporter.flush(DRAIN_LIMIT).await {
        tracing::warn!("not every record reached the principal before shutdown");
    }
    reporter_stop.cancel();
    let _ = client
        .request(Request::Agent(AgentRequest::Deregister { agent_id }))
        .await;
    heartbeat_stop.cancel();
    let _ = heartbeat_task.await;
    Ok(())
}

async fn pause(shutdown: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Registers, retrying with back-off until it works; returns the heartbeat interval the
/// principal asks for, or None if shut down first.
async fn register(
    client: &Client,
    info: &AgentInfo,
    running: &Running,
    shutdown: &CancellationToken,
) -> Option<Duration> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let request = Request::Agent(AgentRequest::Register {
            agent: info.clone(),
            running: running.list(),
        });
        match client.request(request).await {
            Ok(Response::Agent(AgentReply::Registered {
                heartbeat_interval_ms,
            })) => return Some(Duration::from_millis(heartbeat_interval_ms.max(50))),
            Ok(other) => tracing::warn!(?other, "unexpected reply to registration"),
            Err(e) => tracing::warn!(error = %e, "registration failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn heartbeat(
    client: Client,
    info: AgentInfo,
    (running, reporter): (Running, Reporter),
    interval: Duration,
    (reregister, registered): (Arc<Notify>, tokio::sync::watch::Sender<u64>),
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = running.beat.notified() => {}
            _ = reregister.notified() => {
                register(&client, &info, &running, &shutdown).await;
                registered.send_modify(|n| *n += 1);
                continue;
            }
            _ = shutdown.cancelled() => return,
        }
        let list = running.list();
        let free = running.free(info.slots);
        let request = Request::Agent(AgentRequest::Heartbeat {
            agent_id: info.id.clone(),
            running: list,
            free_slots: free,
            spool: reporter.unacknowledged(),
        });
        match client.request(request).await {
            Ok(Response::Agent(AgentReply::HeartbeatAck { known: true, stop })) => {
                running.obey(stop);
            }
            Ok(_) | Err(_) => {
                tracing::info!(
                    "principal does not know this agent (or is unreachable): registering again"
                );
                register(&client, &info, &running, &shutdown).await;
                registered.send_modify(|n| *n += 1);
            }
        }
    }
}

fn start_run(
    a: Assignment,
    agent_id: &AgentId,
    reporter: &Reporter,
    running: &Running,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) {
    let attempt = AttemptRef {
        run_id: a.run_id.clone(),
        attempt: a.attempt,
        token: a.token.clone(),
    };
    running.insert(attempt);
    let recorder = reporter.recorder(a.run_id.clone(), a.attempt, a.token.clone());
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("CDKTR_RUN_ID".into(), a.run_id.to_string());
    env.insert("CDKTR_WORKFLOW_ID".into(), a.workflow.id.to_string());
    env.insert("CDKTR_ATTEMPT".into(), a.attempt.to_string());
    env.insert("CDKTR_AGENT_ID".into(), agent_id.to_string());
    for (k, v) in &a.params {
        env.insert(format!("CDKTR_PARAM_{}", k.to_uppercase()), v.clone());
    }
    let (running, cancel, reporter) = (running.clone(), cancel.clone(), reporter.clone());
    let mut a = a;
    let params = a.params.clone();
    let with_params = |env: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        env.iter()
            .map(|(k, v)| (k.clone(), crate::model::substitute(v, &params)))
            .collect()
    };
    a.workflow.env = with_params(&a.workflow.env);
    for task in &mut a.workflow.tasks {
        task.config = task.config.with_params(&a.params);
        task.env = with_params(&task.env);
    }
    let stop = stop::RunStop::child_of(&cancel);
    running.set_stop(&a.run_id, stop.clone());
    tracing::info!(run = %a.run_id, workflow = %a.workflow.id, "run started");
    tracker.spawn(async move {
        let status = runner::run_dag(&a.workflow, &env, &a.reuse, &recorder, &stop).await;
        recorder.finished(status);
        tracing::info!(run = %a.run_id, %status, "run ended");
        // Keep listing the attempt (heartbeats, re-registration) until the principal has its
        // last record, so it is never taken for lost while its output is still on the way.
        while !reporter.flush(Duration::from_secs(5)).await {
            if cancel.is_cancelled() {
                break;
            }
        }
        running.remove(&a.run_id);
    });
}

#[cfg(test)]
mod reporter_tests;
