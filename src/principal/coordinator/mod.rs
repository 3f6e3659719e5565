//! The coordinator: the run queue, the agent registry, active runs and dispatch, owned by one
//! task and changed only through [`Msg`]s, so no state is shared or locked. Every request
//! carries its own reply channel: nothing here knows about sockets.
//!
//! Split by job:
//! - this file: the handle, the messages and the event loop;
//! - [`runs`]: triggers and schedule fires (overlap policy), queuing runs;
//! - [`dispatch`]: handing queued runs to agents within their free slots, reconciling;
//! - [`liveness`]: heartbeat deadlines, lost agents, crashed runs;
//! - [`records`]: registration and reports (fencing, exactly-once records);
//! - [`agents`]: the registry;
//! - [`recovery`]: the initial state from the runs the store says are unfinished.
//!
//! Timing is deadline-driven: the loop sleeps until the earliest heartbeat deadline, long-poll
//! expiry or orphan deadline, never on a fixed tick. Time comes from a [`Clock`].

mod agents;
pub mod cancel;
mod dispatch;
mod ended;
mod explain;
mod liveness;
mod records;
pub mod recovery;
mod runs;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::publisher::Publisher;
use crate::model::{AgentId, RunId, RunStatus, TaskId, TaskStatus, Workflow, WorkflowId};
use crate::protocol::agent::{AgentReply, AgentRequest};
use crate::protocol::control::{AgentView, StatusView};
use crate::protocol::{ErrorCode, ErrorReply};
use crate::runtime::{contained, Clock};
use crate::store::{Batch, Store, StoreError};
use crate::workflow::Catalog;

pub use runs::unknown_workflow;

/// Where the answer to one request goes.
pub type Reply<T> = oneshot::Sender<Result<T, ErrorReply>>;

pub struct Settings {
    pub heartbeat_timeout: Duration,
    /// How long a PullWork waits for work before an empty answer.
    pub long_poll: Duration,
    /// The bound live-stream endpoint, reported by `status`.
    pub logs_publish: String,
    /// The local live-stream endpoint beside the control socket, if any.
    pub logs_publish_local: Option<String>,
    /// Most runs the queue holds (`principal.max_queued_runs`).
    pub max_queued_runs: usize,
}

/// A trigger as the coordinator takes it.
pub struct TriggerRequest {
    pub workflow: String,
    pub params: BTreeMap<String, String>,
    /// The trigger source recorded with the run (`api` when absent).
    pub source: Option<String>,
    /// Who triggered it (the audit log's actor).
    pub by: Option<String>,
    /// Its audit entry, stored with the queued run.
    pub audit: Option<crate::protocol::control::AuditEntry>,
    /// A rerun: the run it repeats, the definition that run used (or the current one), its
    /// parameters (which `params` override) and the tasks it reuses.
    pub rerun: Option<Box<Rerun>>,
}

pub struct Rerun {
    pub of: RunId,
    pub definition: Workflow,
    pub params: BTreeMap<String, String>,
    pub reuse: Vec<TaskId>,
}

pub enum Msg {
    Agent {
        request: AgentRequest,
        reply: Reply<AgentReply>,
    },
    Trigger {
        request: TriggerRequest,
        reply: Reply<RunId>,
    },
    Status(oneshot::Sender<StatusView>),
    Agents(oneshot::Sender<Vec<AgentView>>),
    /// Failpoint: handling the next control request (trigger, status, agents) panics, to test
    /// containment.
    PanicNext,
    /// A schedule slot is due; the workflow's overlap policy decides what happens.
    Fire {
        workflow: WorkflowId,
        slot: chrono::DateTime<chrono::Utc>,
        /// Run for a slot missed while the principal was down.
        catch_up: bool,
    },
    /// Assignments that never reached their agent (the reply could not be delivered).
    Undelivered(Vec<RunId>),
    /// Why a run is where it is; `None` when it is not active here.
    Explain {
        run_id: RunId,
        reply: Reply<Option<(RunStatus, Vec<String>)>>,
    },
    /// Cancel a run; `None` when it is not active here.
    Cancel {
        run_id: RunId,
        why: String,
        reply: Reply<Option<cancel::CancelOutcome>>,
    },
}

/// Cheap, cloneable handle to the coordinator.
#[derive(Clone)]
pub struct CoordinatorHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

/// Why a request got no answer: the coordinator stopped (shutdown), or it failed handling the
/// request (contained and logged) and dropped its reply.
fn unanswered(tx: &mpsc::UnboundedSender<Msg>) -> ErrorReply {
    if tx.is_closed() {
        ErrorReply::new(ErrorCode::Unavailable, "the principal is shutting down")
    } else {
        ErrorReply::new(
            ErrorCode::Internal,
            "the principal failed handling this request (see its log)",
        )
    }
}

impl CoordinatorHandle {
    /// A handle whose messages arrive on the returned receiver (unit tests of its users).
    #[cfg(test)]
    pub fn detached() -> (CoordinatorHandle, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (CoordinatorHandle { tx }, rx)
    }

    pub fn send(&self, msg: Msg) {
        let _ = self.tx.send(msg);
    }

    /// Sends a message carrying a reply channel and waits for the answer.
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Msg) -> Result<T, ErrorReply> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply));
        rx.await.map_err(|_| unanswered(&self.tx))?
    }

    /// Hands an agent's request over now, so requests keep their arrival order, and returns
    /// the answer to wait for.
    pub fn agent(
        &self,
        request: AgentRequest,
    ) -> impl std::future::Future<Output = Result<AgentReply, ErrorReply>> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Agent { request, reply });
        let tx = self.tx.clone();
        async move { rx.await.map_err(|_| unanswered(&tx))? }
    }

    pub async fn trigger(&self, request: TriggerRequest) -> Result<RunId, ErrorReply> {
        self.ask(|reply| Msg::Trigger { request, reply }).await
    }

    /// Why a run is where it is; `None` when it is not active (ended, or unknown).
    pub async fn explain(
        &self,
        run_id: RunId,
    ) -> Result<Option<(RunStatus, Vec<String>)>, ErrorReply> {
        self.ask(|reply| Msg::Explain { run_id, reply }).await
    }

    /// Cancels a run for `why`; `None` when it is not active (ended, or unknown).
    pub async fn cancel(
        &self,
        run_id: RunId,
        why: String,
    ) -> Result<Option<cancel::CancelOutcome>, ErrorReply> {
        self.ask(|reply| Msg::Cancel { run_id, why, reply }).await
    }

    pub async fn status(&self) -> Result<StatusView, ErrorReply> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Status(reply));
        rx.await.map_err(|_| unanswered(&self.tx))
    }

    pub async fn agents(&self) -> Result<Vec<AgentView>, ErrorReply> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Agents(reply));
        rx.await.map_err(|_| unanswered(&self.tx))
    }
}

/// A run that is queued or running.
pub struct ActiveRun {
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
    /// Who cancelled it and why, once a cancel came for it while it ran.
    pub cancel: Option<String>,
    /// Tasks completed in the run this one reruns: not executed again.
    pub reuse: std::collections::BTreeSet<TaskId>,
    /// Each running task's current try and when it started (for the try's own record).
    pub tries: HashMap<TaskId, (u32, chrono::DateTime<chrono::Utc>)>,
    /// Set for runs recovered as RUNNING after a restart until their agent reconnects.
    pub orphan_deadline: Option<Instant>,
    /// Starts only when no other run of the workflow is running (see `Overlap::serialises`).
    pub serial: bool,
    /// When the current attempt was handed to an agent.
    pub assigned_at: Option<Instant>,
    /// When it was queued, until its first task started (for the trigger-to-start metric;
    /// unknown for a run recovered after a restart).
    pub queued_at: Option<Instant>,
}

/// What the coordinator talks to.
pub struct Links {
    pub store: Store,
    pub publisher: Publisher,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    /// Where replies that wait for a commit run; shutdown waits for them before the socket
    /// closes, so an acknowledged write is never an unanswered request.
    pub pending: TaskTracker,
    pub clock: Clock,
}

/// The coordinator's state. Its fields are private to this module and its job files.
pub struct Coordinator {
    settings: Settings,
    /// Writes of the current step, flushed to the store at its end.
    store: Batch,
    publisher: Publisher,
    catalog: watch::Receiver<Arc<Catalog>>,
    pending: TaskTracker,
    clock: Clock,
    queue: VecDeque<RunId>,
    runs: HashMap<RunId, ActiveRun>,
    agents: agents::Registry,
    /// Runs that ended lately (their late records are kept; others are dropped).
    ended: ended::Ended,
    next_log_id: u64,
    started: Instant,
    /// Failpoint `core_panic` is armed.
    panic_next: bool,
    /// Its own handle, for work that finishes after a commit and must come back here.
    handle: CoordinatorHandle,
}

/// Most further messages handled in one step after the one that woke the coordinator: their
/// writes are committed together.
const STEP_MESSAGES: usize = 64;

/// Starts the coordinator with the runs the store says are unfinished.
pub async fn spawn(
    tracker: &TaskTracker,
    settings: Settings,
    links: Links,
    stop: CancellationToken,
) -> Result<CoordinatorHandle, StoreError> {
    let next_log_id = links.store.max_log_id().await? + 1;
    let unfinished = links.store.unfinished_runs().await?;
    let deadline = links.clock.now() + settings.heartbeat_timeout;
    let recovered = recovery::recover(unfinished, deadline, links.clock.utc());
    links.store.write_later(recovered.crashed.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = CoordinatorHandle { tx };
    let coordinator = Coordinator::new(settings, links, recovered, next_log_id, handle.clone());
    tracker.spawn(coordinator.run(rx, stop));
    Ok(handle)
}

impl Coordinator {
    fn new(
        settings: Settings,
        links: Links,
        recovered: recovery::Recovered,
        next_log_id: u64,
        handle: CoordinatorHandle,
    ) -> Coordinator {
        let Links {
            store,
            publisher,
            catalog,
            pending,
            clock,
        } = links;
        Coordinator {
            settings,
            store: store.batch(),
            publisher,
            catalog,
            pending,
            started: clock.now(),
            clock,
            queue: recovered.queue,
            runs: recovered.runs,
            agents: agents::Registry::default(),
            ended: ended::Ended::default(),
            next_log_id,
            panic_next: false,
            handle,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, stop: CancellationToken) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                _ = stop.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(msg) => {
                        contained("coordinator", "a request", || self.handle(msg));
                        // Whatever else is waiting joins this step (and its writes this
                        // commit), up to a bound that keeps timers on time.
                        for _ in 0..STEP_MESSAGES {
                            let Ok(msg) = rx.try_recv() else { break };
                            contained("coordinator", "a request", || self.handle(msg));
                        }
                    }
                    // Never: the coordinator holds a handle of its own; `stop` ends the loop.
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let now = self.clock.now();
                    contained("coordinator", "deadlines", || self.expire(now));
                }
            }
            self.store.flush();
        }
        self.store.flush();
        tracing::debug!("coordinator stopped");
    }

    fn handle(&mut self, msg: Msg) {
        // The failpoint stands for a bad control request: agents' messages, schedule fires and
        // undelivered assignments arrive at any moment and would make the test a race.
        let control = matches!(msg, Msg::Trigger { .. } | Msg::Status(_) | Msg::Agents(_));
        if self.panic_next && control {
            self.panic_next = false;
            panic!("failpoint core_panic");
        }
        match msg {
            Msg::PanicNext => self.panic_next = true,
            Msg::Agent { request, reply } => self.agent_request(request, reply),
            Msg::Trigger { request, reply } => self.trigger(request, reply),
            Msg::Cancel { run_id, why, reply } => self.cancel(&run_id, why, reply),
            Msg::Explain { run_id, reply } => {
                let _ = reply.send(Ok(self.explain(&run_id)));
            }
            Msg::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Msg::Agents(reply) => {
                let _ = reply.send(self.agents.views());
            }
            Msg::Fire {
                workflow,
                slot,
                catch_up,
            } => self.fire(workflow, slot, catch_up),
            Msg::Undelivered(runs) => {
                for run_id in runs {
                    self.requeue_or_crash(
                        &run_id,
                        "its assignment could not be delivered to the agent",
                    );
                }
                self.dispatch();
            }
        }
    }

    fn status(&self) -> StatusView {
        let catalog = self.catalog.borrow().clone();
        let (alive, total) = self.agents.counts();
        StatusView {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: crate::protocol::VERSION,
            uptime_secs: self.clock.now().duration_since(self.started).as_secs(),
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
            logs_publish_local: self.settings.logs_publish_local.clone(),
            store: self.store.health().to_string(),
            changes: self.store.changes(),
            catalog: catalog.generation,
            warnings: crate::runtime::logging::warnings_logged(),
        }
    }
}
