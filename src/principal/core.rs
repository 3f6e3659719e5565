//! The coordinator: the run queue, the agent registry, active runs and dispatch, owned by one
//! task and changed only through [`CoreMsg`]s, so no state is shared or locked.
//!
//! Timing is deadline-driven: the loop sleeps until the earliest heartbeat deadline, long-poll
//! expiry or orphan deadline, never on a fixed tick.

mod agents;
mod records;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::publisher::Publisher;
use super::server::{Replier, ReplyTo};
use crate::model::{AgentId, Overlap, RunId, RunStatus, TaskId, TaskStatus, Workflow, WorkflowId};
use crate::protocol::agent::{AgentReply, AgentRequest, Assignment, AttemptRef};
use crate::protocol::control::{AgentView, StatusView};
use crate::protocol::{ErrorCode, ErrorReply, Response};
use crate::runtime::contained;
use crate::store::{NewRun, Store, StoreError, Write};
use crate::workflow::Catalog;

/// Most slots one agent may declare.
const MAX_AGENT_SLOTS: u32 = 10_000;

pub struct Settings {
    pub heartbeat_timeout: Duration,
    /// How long a PullWork waits for work before an empty answer.
    pub long_poll: Duration,
    /// The bound live-stream endpoint, reported by `status`.
    pub logs_publish: String,
}

pub enum CoreMsg {
    Agent {
        request: AgentRequest,
        reply: ReplyTo,
    },
    Trigger {
        workflow: String,
        params: BTreeMap<String, String>,
        trigger: Option<String>,
        reply: oneshot::Sender<Result<RunId, ErrorReply>>,
    },
    Status(oneshot::Sender<StatusView>),
    Agents(oneshot::Sender<Vec<AgentView>>),
    /// Failpoint: the next message's handling panics (to test containment).
    PanicNext,
    /// A schedule slot is due; the workflow's overlap policy decides what happens.
    Fire {
        workflow: WorkflowId,
        slot: chrono::DateTime<Utc>,
        /// Run for a slot missed while the principal was down.
        catch_up: bool,
    },
}

/// Cheap, cloneable handle to the coordinator.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::UnboundedSender<CoreMsg>,
}

fn gone() -> ErrorReply {
    ErrorReply::new(ErrorCode::Unavailable, "the principal is shutting down")
}

impl CoreHandle {
    pub fn send(&self, msg: CoreMsg) {
        let _ = self.tx.send(msg);
    }

    pub async fn trigger(
        &self,
        workflow: String,
        params: BTreeMap<String, String>,
        trigger: Option<String>,
    ) -> Result<RunId, ErrorReply> {
        let (reply, rx) = oneshot::channel();
        self.send(CoreMsg::Trigger {
            workflow,
            params,
            trigger,
            reply,
        });
        rx.await.map_err(|_| gone())?
    }

    pub async fn status(&self) -> Result<StatusView, ErrorReply> {
        let (reply, rx) = oneshot::channel();
        self.send(CoreMsg::Status(reply));
        rx.await.map_err(|_| gone())
    }

    pub async fn agents(&self) -> Result<Vec<AgentView>, ErrorReply> {
        let (reply, rx) = oneshot::channel();
        self.send(CoreMsg::Agents(reply));
        rx.await.map_err(|_| gone())
    }
}

/// A run that is queued or running.
pub(super) struct ActiveRun {
    pub run_id: RunId,
    pub workflow: Workflow,
    pub params: BTreeMap<String, String>,
    pub status: RunStatus,
    pub attempt: u32,
    pub token: String,
    pub agent: Option<AgentId>,
    /// Records of the current attempt with `seq <= last_seq` are stored.
    pub last_seq: u64,
    pub tasks: HashMap<TaskId, TaskStatus>,
    /// Set for runs recovered as RUNNING after a restart until their agent reconnects.
    pub orphan_deadline: Option<Instant>,
    /// Starts only when no other run of the workflow is running (`overlap: queue`).
    pub serial: bool,
    /// When the current attempt was handed to an agent.
    pub assigned_at: Option<Instant>,
}

pub(super) struct Core {
    pub settings: Settings,
    pub store: Store,
    pub replier: Replier,
    pub publisher: Publisher,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub queue: VecDeque<RunId>,
    pub runs: HashMap<RunId, ActiveRun>,
    pub agents: agents::Registry,
    pub next_log_id: u64,
    pub started: Instant,
    /// Failpoint `core_panic` is armed.
    pub panic_next: bool,
    /// Replies that wait for a commit; shutdown waits for them before the socket closes.
    pub pending: TaskTracker,
}

/// What the coordinator talks to.
pub struct Links {
    pub store: Store,
    pub replier: Replier,
    pub publisher: Publisher,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    /// Assignments the server could not deliver.
    pub undelivered: mpsc::UnboundedReceiver<Vec<RunId>>,
    /// Where replies that wait for a commit run (see [`Core::pending`]).
    pub pending: TaskTracker,
}

pub async fn spawn(
    tracker: &TaskTracker,
    settings: Settings,
    links: Links,
    stop: CancellationToken,
) -> Result<CoreHandle, StoreError> {
    let Links {
        store,
        replier,
        publisher,
        catalog,
        undelivered,
        pending,
    } = links;
    let mut core = Core {
        settings,
        next_log_id: store.max_log_id().await? + 1,
        store,
        replier,
        publisher,
        catalog,
        queue: VecDeque::new(),
        runs: HashMap::new(),
        agents: agents::Registry::default(),
        started: Instant::now(),
        panic_next: false,
        pending,
    };
    super::recovery::recover(&mut core).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tracker.spawn(core.run(rx, undelivered, stop));
    Ok(CoreHandle { tx })
}

impl Core {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<CoreMsg>,
        mut undelivered: mpsc::UnboundedReceiver<Vec<RunId>>,
        stop: CancellationToken,
    ) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                _ = stop.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(msg) => {
                        contained("coordinator", "a request", || self.handle(msg));
                    }
                    None => break,
                },
                Some(runs) = undelivered.recv() => {
                    contained("coordinator", "an undelivered assignment", || {
                        for run_id in runs {
                            self.requeue_or_crash(&run_id, "its assignment could not be delivered to the agent");
                        }
                        self.dispatch();
                    });
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    contained("coordinator", "deadlines", || self.expire(Instant::now()));
                }
            }
        }
        tracing::debug!("coordinator stopped");
    }

    fn handle(&mut self, msg: CoreMsg) {
        if self.panic_next {
            self.panic_next = false;
            panic!("failpoint core_panic");
        }
        match msg {
            CoreMsg::PanicNext => self.panic_next = true,
            CoreMsg::Agent { request, reply } => self.agent_request(request, reply),
            CoreMsg::Trigger {
                workflow,
                params,
                trigger,
                reply,
            } => self.trigger(workflow, params, trigger, reply),
            CoreMsg::Status(reply) => {
                let _ = reply.send(self.status());
            }
            CoreMsg::Agents(reply) => {
                let _ = reply.send(self.agents.views());
            }
            CoreMsg::Fire {
                workflow,
                slot,
                catch_up,
            } => self.fire(workflow, slot, catch_up),
        }
    }

    fn agent_request(&mut self, request: AgentRequest, reply: ReplyTo) {
        match request {
            AgentRequest::Register { agent, .. }
                if !(1..=MAX_AGENT_SLOTS).contains(&agent.slots) =>
            {
                self.replier.error(
                    &reply,
                    ErrorCode::Invalid,
                    format!(
                        "field `slots`: {} is not between 1 and {MAX_AGENT_SLOTS}",
                        agent.slots
                    ),
                );
            }
            AgentRequest::Register { agent, running } => self.register(agent, running, reply),
            AgentRequest::Heartbeat {
                agent_id,
                running,
                free_slots,
            } => {
                let known = self.agents.heartbeat(&agent_id, free_slots, Instant::now());
                self.agent_reply(&reply, AgentReply::HeartbeatAck { known });
                if known {
                    // An assignment older than a third of the heartbeat timeout that the agent
                    // does not list never arrived.
                    let grace = self.settings.heartbeat_timeout / 3;
                    self.reconcile(&agent_id, &running, grace);
                    self.dispatch();
                }
            }
            AgentRequest::PullWork {
                agent_id,
                free_slots,
            } => {
                if !self.agents.is_alive(&agent_id) {
                    self.replier.error(
                        &reply,
                        ErrorCode::Invalid,
                        format!("agent `{agent_id}` is not registered: register first"),
                    );
                    return;
                }
                let expires = Instant::now() + self.settings.long_poll;
                if let Some(old) = self.agents.set_pull(&agent_id, free_slots, reply, expires) {
                    self.agent_reply(
                        &old,
                        AgentReply::Work {
                            assignments: vec![],
                        },
                    );
                }
                self.dispatch();
            }
            AgentRequest::Report { agent_id, records } => self.report(&agent_id, records, reply),
            AgentRequest::Deregister { agent_id } => {
                self.lose_agent(
                    &agent_id,
                    "gone",
                    "agent deregistered while the run was active",
                );
                self.agent_reply(&reply, AgentReply::Deregistered);
            }
        }
    }

    pub fn agent_reply(&self, to: &ReplyTo, reply: AgentReply) {
        self.replier.send(to, Response::Agent(reply));
    }

    fn trigger(
        &mut self,
        workflow: String,
        params: BTreeMap<String, String>,
        trigger: Option<String>,
        reply: oneshot::Sender<Result<RunId, ErrorReply>>,
    ) {
        let trigger = match validate_trigger(trigger) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let catalog = self.catalog.borrow().clone();
        let Some(definition) = catalog.workflows.get(&WorkflowId::new(workflow.as_str())) else {
            let _ = reply.send(Err(super::control::unknown_workflow(&catalog, &workflow)));
            return;
        };
        let params = match definition.resolve_params(&params) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Err(ErrorReply::new(
                    ErrorCode::Invalid,
                    format!("field `params`: {e}"),
                )));
                return;
            }
        };
        let definition = definition.clone();
        let run_id = RunId::generate();
        let committed = self.enqueue(
            run_id.clone(),
            &definition,
            params,
            trigger,
            false,
            Vec::new(),
        );
        // The trigger is acknowledged once the queued run is durable.
        self.pending.spawn(async move {
            let result = committed
                .await
                .map(|_| run_id)
                .map_err(|e| ErrorReply::new(ErrorCode::Unavailable, format!("store: {e}")));
            let _ = reply.send(result);
        });
        self.dispatch();
    }

    /// Queues a run of `definition` (a snapshot: later edits of the file do not change it) and
    /// returns its id and a future that resolves when the queued run is committed.
    /// `with` is stored in the same transaction as the queued run.
    fn enqueue(
        &mut self,
        run_id: RunId,
        definition: &Workflow,
        params: BTreeMap<String, String>,
        trigger: String,
        serial: bool,
        with: Vec<Write>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let new_run = NewRun {
            run_id: run_id.clone(),
            workflow_id: definition.id.clone(),
            trigger,
            queued_at: Utc::now(),
            params_json: serde_json::to_string(&params).unwrap_or_else(|_| "{}".into()),
            definition_json: serde_json::to_string(definition).unwrap_or_default(),
            tasks: definition.tasks.iter().map(|t| t.id.clone()).collect(),
        };
        self.runs.insert(
            run_id.clone(),
            ActiveRun {
                run_id: run_id.clone(),
                tasks: definition
                    .tasks
                    .iter()
                    .map(|t| (t.id.clone(), TaskStatus::Pending))
                    .collect(),
                workflow: definition.clone(),
                params,
                status: RunStatus::Queued,
                attempt: 0,
                token: String::new(),
                agent: None,
                last_seq: 0,
                orphan_deadline: None,
                serial,
                assigned_at: None,
            },
        );
        self.queue.push_back(run_id.clone());
        let mut writes = vec![Write::RunQueued(new_run)];
        writes.extend(with);
        self.store.submit(writes)
    }

    /// A schedule slot: skipped while an earlier run is active (`overlap: skip`), queued behind
    /// it (`queue`) or run alongside (`allow`). The slot's fate is recorded either way.
    fn fire(&mut self, workflow: WorkflowId, slot: chrono::DateTime<Utc>, catch_up: bool) {
        let record = |store: &Store, fate: &str, run_id: Option<RunId>, note: Option<String>| {
            let mut w = super::scheduler::slot_write(&workflow, slot, fate, note);
            if let Write::Slot(r) = &mut w {
                r.run_id = run_id;
            }
            store.write_later(vec![w]);
        };
        let catalog = self.catalog.borrow().clone();
        let Some(definition) = catalog.workflows.get(&workflow).cloned() else {
            record(
                &self.store,
                "missed",
                None,
                Some("the workflow is no longer loaded".into()),
            );
            return;
        };
        let active = self
            .runs
            .values()
            .find(|r| r.workflow.id == workflow)
            .map(|r| r.run_id.clone());
        // Caught-up slots run one after another whatever the overlap policy says: `catchup`
        // asked for each of them to run.
        if let (false, Overlap::Skip, Some(active)) = (catch_up, definition.overlap, &active) {
            record(
                &self.store,
                "skipped-overlap",
                None,
                Some(format!("run {active} was still active")),
            );
            tracing::info!(workflow = %workflow, %slot, %active, "slot skipped: an earlier run is active");
            return;
        }
        let params = match definition.resolve_params(&BTreeMap::new()) {
            Ok(p) => p,
            Err(e) => {
                record(&self.store, "missed", None, Some(e));
                return;
            }
        };
        let serial = definition.overlap.serialises(catch_up);
        let run_id = RunId::generate();
        let fate = if catch_up { "caught-up" } else { "fired" };
        let mut slot_record = super::scheduler::slot_write(&workflow, slot, fate, None);
        if let Write::Slot(r) = &mut slot_record {
            r.run_id = Some(run_id.clone());
        }
        // The slot's fate and its run are stored together: a crash cannot keep one and lose
        // the other (which would catch the slot up a second time).
        let _committed = self.enqueue(
            run_id.clone(),
            &definition,
            params,
            "schedule".into(),
            serial,
            vec![slot_record],
        );
        tracing::info!(workflow = %workflow, %slot, run = %run_id, fate, "schedule slot");
        self.dispatch();
    }

    /// Hands queued runs to agents that are waiting for work, never beyond their free slots.
    pub fn dispatch(&mut self) {
        while self.eligible_position().is_some() {
            let Some((agent_id, free)) = self.agents.best_waiting() else {
                return;
            };
            let Some(pull) = self.agents.take_pull(&agent_id) else {
                return;
            };
            let mut assignments = Vec::new();
            let mut writes = Vec::new();
            while assignments.len() < free as usize {
                let Some(run_id) = self
                    .eligible_position()
                    .and_then(|at| self.queue.remove(at))
                else {
                    break;
                };
                if let Some((a, w)) = self.assign(&run_id, &agent_id) {
                    assignments.push(a);
                    writes.push(w);
                }
            }
            // The agent hears of an attempt only once it is durable: a principal that crashes
            // in between never hands the same attempt number out twice.
            let committed = self.store.submit(writes);
            let replier = self.replier.clone();
            self.pending.spawn(async move {
                if let Err(e) = committed.await {
                    tracing::error!(error = %e, "assignment not stored; sending it anyway");
                }
                replier.send_work(&pull, assignments);
            });
        }
    }

    /// Compares what an agent says it runs with what the principal assigned it: a run
    /// assigned more than `grace` ago that the agent does not know never reached it (queued
    /// again) or was lost by it after it started (CRASHED).
    pub(super) fn reconcile(
        &mut self,
        agent_id: &AgentId,
        running: &[AttemptRef],
        grace: Duration,
    ) {
        let now = Instant::now();
        for run_id in self.agents.runs_of(agent_id) {
            let Some(run) = self.runs.get(&run_id) else {
                continue;
            };
            let known = running
                .iter()
                .any(|a| a.run_id == run_id && a.attempt == run.attempt && a.token == run.token);
            let settled = run.assigned_at.is_none_or(|at| at + grace <= now);
            if !known && settled {
                self.requeue_or_crash(&run_id, &format!("agent {agent_id} does not run it"));
            }
        }
    }

    /// A run its agent never started goes back to the front of the queue (a new attempt
    /// follows); one that had started is CRASHED.
    fn requeue_or_crash(&mut self, run_id: &RunId, reason: &str) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        if run.status != RunStatus::Running {
            return;
        }
        if run.last_seq > 0 {
            self.crash_run(run_id, reason);
            return;
        }
        if let Some(agent) = run.agent.take() {
            self.agents.remove_run(&agent, run_id);
        }
        run.status = RunStatus::Queued;
        run.assigned_at = None;
        // The closed attempt's token: its late records must not match the run any more.
        run.token.clear();
        self.queue.push_front(run_id.clone());
        tracing::warn!(run = %run_id, reason, "run queued again");
        self.store.write_later(vec![Write::Run {
            run_id: run_id.clone(),
            status: RunStatus::Queued,
            ts: Utc::now(),
            agent: None,
            attempt: run.attempt,
            token: None,
            reason: Some(format!("queued again: {reason}")),
        }]);
    }

    /// Where in the queue the first run is that may start now: a serial run waits while
    /// another run of its workflow is running.
    fn eligible_position(&self) -> Option<usize> {
        self.queue.iter().position(|id| {
            self.runs.get(id).is_none_or(|r| {
                !r.serial
                    || !self
                        .runs
                        .values()
                        .any(|o| o.workflow.id == r.workflow.id && o.status == RunStatus::Running)
            })
        })
    }

    /// Marks a queued run RUNNING on `agent_id` with a new attempt and token; returns what to
    /// send the agent and the write that records it.
    fn assign(&mut self, run_id: &RunId, agent_id: &AgentId) -> Option<(Assignment, Write)> {
        let run = self.runs.get_mut(run_id)?;
        if run.status != RunStatus::Queued {
            return None;
        }
        run.status = RunStatus::Running;
        run.assigned_at = Some(Instant::now());
        run.attempt += 1;
        run.token = ulid::Ulid::new().to_string();
        run.agent = Some(agent_id.clone());
        run.last_seq = 0;
        self.agents.add_run(agent_id, run_id);
        let write = Write::Run {
            run_id: run_id.clone(),
            status: RunStatus::Running,
            ts: Utc::now(),
            agent: Some(agent_id.clone()),
            attempt: run.attempt,
            token: Some(run.token.clone()),
            reason: None,
        };
        tracing::info!(run = %run_id, workflow = %run.workflow.id, agent = %agent_id, attempt = run.attempt, "assigned");
        let assignment = Assignment {
            run_id: run_id.clone(),
            attempt: run.attempt,
            token: run.token.clone(),
            workflow: run.workflow.clone(),
            params: run.params.clone(),
        };
        Some((assignment, write))
    }

    /// Ends a run that is not finished by its agent (agent lost, never reconnected): running
    /// tasks become CRASHED, tasks that never started SKIPPED.
    pub fn crash_run(&mut self, run_id: &RunId, reason: &str) {
        let Some(mut run) = self.runs.remove(run_id) else {
            return;
        };
        if let Some(agent) = &run.agent {
            self.agents.remove_run(agent, run_id);
        }
        let now = Utc::now();
        let mut writes = Vec::new();
        for (task_id, status) in run.tasks.iter_mut() {
            let next = match status {
                TaskStatus::Running => TaskStatus::Crashed,
                TaskStatus::Pending => TaskStatus::Skipped,
                _ => continue,
            };
            *status = next;
            writes.push(Write::Task {
                run_id: run_id.clone(),
                task_id: task_id.clone(),
                attempt: run.attempt,
                status: next,
                ts: now,
                exit_code: None,
                reason: Some(reason.to_owned()),
            });
        }
        writes.push(Write::Run {
            run_id: run_id.clone(),
            status: RunStatus::Crashed,
            ts: now,
            agent: None,
            attempt: run.attempt,
            token: None,
            reason: Some(reason.to_owned()),
        });
        self.store.write_later(writes);
        self.publisher
            .publish(crate::protocol::logs::LogEvent::RunEnded {
                run_id: run_id.clone(),
                workflow_id: run.workflow.id.clone(),
                status: RunStatus::Crashed,
            });
        tracing::warn!(run = %run_id, reason, "run crashed");
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let orphans = self.runs.values().filter_map(|r| r.orphan_deadline);
        self.agents
            .deadlines(self.settings.heartbeat_timeout)
            .chain(orphans)
            .min()
            .unwrap_or(far)
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.settings.heartbeat_timeout;
        for agent_id in self.agents.silent_since(now, timeout) {
            let reason = format!(
                "agent {agent_id} lost: no heartbeat for {}",
                humantime::format_duration(timeout)
            );
            self.lose_agent(&agent_id, "lost", &reason);
        }
        for pull in self.agents.expired_pulls(now) {
            self.agent_reply(
                &pull,
                AgentReply::Work {
                    assignments: vec![],
                },
            );
        }
        let orphans: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| r.orphan_deadline.is_some_and(|d| d <= now))
            .map(|r| r.run_id.clone())
            .collect();
        for run_id in orphans {
            self.crash_run(
                &run_id,
                "its agent did not reconnect after the principal restarted",
            );
        }
    }

    /// Marks an agent lost or gone and crashes the runs it held.
    fn lose_agent(&mut self, agent_id: &AgentId, state: &'static str, reason: &str) {
        let Some(runs) = self.agents.mark(agent_id, state) else {
            return;
        };
        tracing::warn!(agent = %agent_id, state, runs = runs.len(), "agent no longer serving");
        if let Some(w) = self.agents.store_write(agent_id) {
            self.store.write_later(vec![w]);
        }
        for run_id in runs {
            if state == "gone" {
                // It flushed its records before leaving: a run with none never started.
                self.requeue_or_crash(&run_id, reason);
            } else {
                self.crash_run(&run_id, reason);
            }
        }
        self.dispatch();
    }

    fn status(&self) -> StatusView {
        let catalog = self.catalog.borrow().clone();
        let (alive, total) = self.agents.counts();
        StatusView {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: crate::protocol::VERSION,
            uptime_secs: self.started.elapsed().as_secs(),
            workflows_loaded: catalog.workflows.len(),
            workflows_invalid: catalog.invalid_count(),
            queue_length: self.queue.len(),
            runs_active: self
                .runs
                .values()
                .filter(|r| r.status == RunStatus::Running)
                .count(),
            agents_alive: alive,
            agents_total: total,
            logs_publish: self.settings.logs_publish.clone(),
            store: self.store.health(),
        }
    }
}

/// Trigger sources a request may name; `event:<name>` is open-ended.
fn validate_trigger(trigger: Option<String>) -> Result<String, ErrorReply> {
    let t = trigger.unwrap_or_else(|| "api".into());
    let ok = matches!(
        t.as_str(),
        "cli" | "tui" | "api" | "schedule" | "retry" | "rerun"
    ) || t.strip_prefix("event:").is_some_and(|name| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    });
    if ok {
        Ok(t)
    } else {
        Err(ErrorReply::new(
            ErrorCode::Invalid,
            format!(
                "field `trigger`: `{t}` is not a trigger source (cli, tui, api, schedule, retry, \
                 rerun or event:<name>)"
            ),
        ))
    }
}
