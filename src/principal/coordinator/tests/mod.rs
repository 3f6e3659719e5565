//! The coordinator on a manual clock: no processes, no sockets, no sleeping. Each test drives
//! it through its message handlers and reads its state and the (real, temporary) store.
//! The bounds on what it keeps (queue, late records, agents) are in [`bounds`].

mod bounds;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::task::TaskTracker;

use super::recovery::{recover, Recovered};
use super::{Coordinator, CoordinatorHandle, Links, Settings, TriggerRequest};
use crate::model::{
    AgentId, AgentState, RunId, RunStatus, SlotFate, TaskId, TaskStatus, TriggerSource, Workflow,
    WorkflowId,
};
use crate::principal::publisher::Publisher;
use crate::protocol::agent::{
    AgentInfo, AgentReply, AgentRequest, Assignment, AttemptRef, Record, RecordEvent,
};
use crate::protocol::ErrorReply;
use crate::runtime::Clock;
use crate::store::{Store, StoreGuard, UnfinishedRun};
use crate::workflow::parse::parse_workflow;
use crate::workflow::Catalog;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_QUEUED: usize = 8;

fn workflow(id: &str, overlap: &str) -> Workflow {
    let text = format!(
        "name: {id}\noverlap: {overlap}\ntasks:\n  a: {{name: A, config: !Shell {{script: x}}}}\n"
    );
    parse_workflow(WorkflowId::new(id), std::path::Path::new("w.yml"), &text)
        .workflow
        .expect("valid workflow")
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0)
        .single()
        .unwrap()
}

struct Fixture {
    c: Coordinator,
    clock: Clock,
    store: Store,
    _guard: StoreGuard,
    _catalog: watch::Sender<std::sync::Arc<Catalog>>,
    _dir: tempfile::TempDir,
}

fn fixture(workflows: &[Workflow], recovered: Recovered) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, guard) = Store::open(&dir.path().join("c.duckdb")).unwrap();
    let workflows = workflows.iter().map(|w| (w.id.clone(), w.clone()));
    let catalog = Catalog {
        workflows: workflows.collect(),
        ..Default::default()
    };
    let (catalog_tx, catalog_rx) = watch::channel(std::sync::Arc::new(catalog));
    let clock = Clock::manual(start());
    let (tx, _rx) = mpsc::unbounded_channel();
    let c = Coordinator::new(
        Settings {
            heartbeat_timeout: TIMEOUT,
            long_poll: Duration::from_secs(20),
            logs_publish: String::new(),
            logs_publish_local: None,
            max_queued_runs: MAX_QUEUED,
        },
        Links {
            store: store.clone(),
            publisher: Publisher::discard(),
            catalog: catalog_rx,
            pending: TaskTracker::new(),
            clock: clock.clone(),
        },
        recovered,
        1,
        CoordinatorHandle { tx },
    );
    Fixture {
        c,
        clock,
        store,
        _guard: guard,
        _catalog: catalog_tx,
        _dir: dir,
    }
}

type Answer = oneshot::Receiver<Result<AgentReply, ErrorReply>>;

impl Fixture {
    fn agent(&mut self, request: AgentRequest) -> Answer {
        let (reply, rx) = oneshot::channel();
        self.c.agent_request(request, reply);
        self.c.store.flush();
        rx
    }

    fn register(&mut self, name: &str, slots: u32) -> AgentId {
        let id = AgentId::new(name);
        let mut answer = self.agent(AgentRequest::Register {
            agent: AgentInfo {
                id: id.clone(),
                name: name.into(),
                host: "h".into(),
                slots,
                labels: BTreeMap::new(),
                version: "test".into(),
                instance: "1".into(),
            },
            running: Vec::new(),
        });
        assert!(matches!(
            answer.try_recv(),
            Ok(Ok(AgentReply::Registered { .. }))
        ));
        id
    }

    fn pull(&mut self, agent: &AgentId, free_slots: u32) -> Answer {
        self.agent(AgentRequest::PullWork {
            agent_id: agent.clone(),
            free_slots,
        })
    }

    /// A one-slot agent `a1` holding one run of `w`: the agent, the run and its assignment.
    async fn one_assigned_run(&mut self) -> (AgentId, RunId, Assignment) {
        let agent = self.register("a1", 1);
        let run = self.trigger("w").await;
        let mut assigned = work(self.pull(&agent, 1)).await;
        assert_eq!(assigned.len(), 1);
        (agent, run, assigned.remove(0))
    }

    async fn trigger(&mut self, workflow: &str) -> RunId {
        let (reply, rx) = oneshot::channel();
        self.c
            .trigger(triggering(workflow, Some("cli".into())), reply);
        self.c.store.flush();
        rx.await.unwrap().unwrap()
    }

    fn report(&mut self, agent: &AgentId, records: Vec<Record>) -> Answer {
        self.agent(AgentRequest::Report {
            agent_id: agent.clone(),
            records,
        })
    }

    fn status_of(&self, run: &RunId) -> Option<RunStatus> {
        self.c.runs.get(run).map(|r| r.status)
    }

    fn queued_of(&self, workflow: &str) -> usize {
        self.c
            .runs
            .values()
            .filter(|r| r.workflow.id.as_str() == workflow)
            .count()
    }
}

/// A trigger of `workflow` with no parameters, by `ops`.
fn triggering(workflow: &str, source: Option<String>) -> TriggerRequest {
    TriggerRequest {
        workflow: workflow.into(),
        params: BTreeMap::new(),
        source,
        by: Some("ops".into()),
        audit: None,
        rerun: None,
    }
}

/// The assignments a pull was answered with.
async fn work(answer: Answer) -> Vec<Assignment> {
    match answer.await {
        Ok(Ok(AgentReply::Work { assignments, .. })) => assignments,
        other => panic!("expected work, got {other:?}"),
    }
}

fn finished(a: &Assignment, seq: u64, status: RunStatus) -> Record {
    Record {
        run_id: a.run_id.clone(),
        attempt: a.attempt,
        token: a.token.clone(),
        seq,
        ts: start(),
        event: RecordEvent::RunFinished { status },
    }
}

#[tokio::test]
async fn dispatch_never_hands_an_agent_more_runs_than_its_free_slots() {
    let mut f = fixture(&[workflow("w", "allow")], Recovered::default());
    let agent = f.register("a1", 2);
    for _ in 0..5 {
        f.trigger("w").await;
    }
    let first = work(f.pull(&agent, 2)).await;
    assert_eq!(first.len(), 2);
    assert_eq!(f.c.queue.len(), 3);
    // The agent says it has two free, but holds two runs of its two slots: nothing more.
    let mut waiting = f.pull(&agent, 2);
    assert!(waiting.try_recv().is_err(), "the pull waits");
    assert_eq!(f.c.queue.len(), 3);
    // One run ends: exactly one slot frees up, and the waiting pull gets one run.
    let ack = f.report(&agent, vec![finished(&first[0], 1, RunStatus::Completed)]);
    let next = work(waiting).await;
    assert_eq!(next.len(), 1);
    assert_eq!(f.c.queue.len(), 2);
    assert!(matches!(ack.await, Ok(Ok(AgentReply::ReportAck { .. }))));
    // An agent that says it has one free gets one, whatever its slot count says.
    let big = f.register("a2", 8);
    assert_eq!(work(f.pull(&big, 1)).await.len(), 1);
}

#[tokio::test]
async fn overlap_policies_decide_what_a_second_slot_does() {
    let (skip, queue, allow) = (
        workflow("skip", "skip"),
        workflow("queue", "queue"),
        workflow("allow", "allow"),
    );
    let mut f = fixture(&[skip, queue, allow], Recovered::default());
    let slot = |s: i64| start() + chrono::Duration::seconds(s);
    for id in ["skip", "queue", "allow"] {
        f.c.fire(WorkflowId::new(id), slot(1), false);
        f.c.store.flush();
        f.c.fire(WorkflowId::new(id), slot(2), false);
        f.c.store.flush();
    }
    assert_eq!(
        f.queued_of("skip"),
        1,
        "the second slot of `skip` is skipped"
    );
    assert_eq!(f.queued_of("queue"), 2);
    assert_eq!(f.queued_of("allow"), 2);
    let history = f.store.slot_history("skip", 10).await.unwrap();
    let fates: Vec<SlotFate> = history.iter().map(|h| h.fate).collect();
    assert_eq!(fates, [SlotFate::SkippedOverlap, SlotFate::Fired]);

    let agent = f.register("a1", 10);
    let assigned = work(f.pull(&agent, 10)).await;
    let by_workflow = |id: &str| {
        assigned
            .iter()
            .filter(|a| a.workflow.id.as_str() == id)
            .count()
    };
    // `queue` runs one at a time; `allow` runs both at once.
    assert_eq!((by_workflow("queue"), by_workflow("allow")), (1, 2));
    assert_eq!(by_workflow("skip"), 1);
    // A caught-up slot of `skip` is queued (one after another), not skipped.
    f.c.fire(WorkflowId::new("skip"), slot(3), true);
    f.c.store.flush();
    assert_eq!(f.queued_of("skip"), 2);
    assert!(f
        .c
        .runs
        .values()
        .any(|r| r.serial && r.workflow.id.as_str() == "skip"));
}

#[tokio::test]
async fn heartbeat_loss_crashes_the_agents_runs() {
    let mut f = fixture(&[workflow("w", "allow")], Recovered::default());
    let agent = f.register("a1", 2);
    let run = f.trigger("w").await;
    let assigned = work(f.pull(&agent, 2)).await;
    assert_eq!(f.status_of(&run), Some(RunStatus::Running));
    // A heartbeat within the timeout keeps it alive past the first deadline.
    f.clock.advance(TIMEOUT / 2);
    let running = vec![AttemptRef {
        run_id: run.clone(),
        attempt: assigned[0].attempt,
        token: assigned[0].token.clone(),
    }];
    f.agent(AgentRequest::Heartbeat {
        agent_id: agent.clone(),
        running,
        free_slots: 1,
        spool: 7,
    });
    assert_eq!(
        f.c.agents.views()[0].spool_depth,
        7,
        "its spool, as it said"
    );
    f.clock.advance(TIMEOUT / 2 + Duration::from_millis(1));
    f.c.expire(f.clock.now());
    f.c.store.flush();
    assert_eq!(f.status_of(&run), Some(RunStatus::Running));
    // Then silence for a whole timeout: lost, and its run CRASHED.
    f.clock.advance(TIMEOUT);
    assert!(f.c.next_deadline() <= f.clock.now());
    f.c.expire(f.clock.now());
    f.c.store.flush();
    assert_eq!(f.status_of(&run), None, "no longer active");
    let views = f.c.agents.views();
    assert_eq!(views[0].state, AgentState::Lost);
    let stored = f.store.get_run(run.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.summary.status, RunStatus::Crashed);
}

fn unfinished(
    id: &str,
    status: RunStatus,
    definition: &Workflow,
    caught_up: bool,
) -> UnfinishedRun {
    UnfinishedRun {
        reuse: Vec::new(),
        run_id: RunId::new(id),
        status,
        trigger: TriggerSource::Schedule,
        queued_at: start(),
        started_at: None,
        agent: None,
        attempt: u32::from(status == RunStatus::Running),
        token: Some("t1".into()),
        last_seq: 0,
        params_json: "{}".into(),
        definition_json: serde_json::to_string(definition).unwrap(),
        tasks: vec![(TaskId::new("a"), TaskStatus::Pending)],
        caught_up,
    }
}

#[tokio::test]
async fn recovery_requeues_in_order_and_crashes_orphans_at_their_deadline() {
    let skip = workflow("skip", "skip");
    let mut broken = unfinished("broken", RunStatus::Queued, &skip, false);
    broken.definition_json = "{not json".into();
    let runs = vec![
        unfinished("q1", RunStatus::Queued, &skip, true),
        unfinished("r1", RunStatus::Running, &skip, false),
        broken,
        unfinished("q2", RunStatus::Queued, &skip, false),
    ];
    let clock = Clock::manual(start());
    let deadline = clock.now() + TIMEOUT;
    let recovered = recover(runs, deadline, start());
    let queue: Vec<&str> = recovered.queue.iter().map(|r| r.as_str()).collect();
    assert_eq!(queue, ["q1", "q2"]);
    assert_eq!(recovered.crashed.len(), 1);
    // A caught-up `skip` run stays serial after a restart; a plain fired one does not.
    assert!(recovered.runs[&RunId::new("q1")].serial);
    assert!(!recovered.runs[&RunId::new("q2")].serial);
    assert_eq!(
        recovered.runs[&RunId::new("r1")].orphan_deadline,
        Some(deadline)
    );

    let mut f = fixture(&[skip], recovered);
    f.clock.advance(TIMEOUT);
    f.c.expire(f.clock.now());
    f.c.store.flush();
    assert_eq!(f.status_of(&RunId::new("r1")), None, "orphan crashed");
    assert_eq!(f.status_of(&RunId::new("q1")), Some(RunStatus::Queued));
}

#[tokio::test]
async fn fencing_keeps_a_stale_attempts_records_out() {
    let mut f = fixture(&[workflow("w", "allow")], Recovered::default());
    let (agent, run, assigned) = f.one_assigned_run().await;
    let mut stale = finished(&assigned, 1, RunStatus::Completed);
    stale.token = "an older attempt".into();
    let ack = f.report(&agent, vec![stale]).await.unwrap().unwrap();
    assert!(matches!(ack, AgentReply::ReportAck { .. }));
    assert_eq!(f.status_of(&run), Some(RunStatus::Running), "not applied");
    assert_eq!(f.store.count("late_records").await.unwrap(), 1);
    // The current attempt's record is applied.
    f.report(&agent, vec![finished(&assigned, 1, RunStatus::Completed)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.status_of(&run), None);
    let stored = f.store.get_run(run.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.summary.status, RunStatus::Completed);
}

#[tokio::test]
async fn an_agent_cannot_report_on_another_agents_run_even_with_its_token() {
    let mut f = fixture(&[workflow("w", "allow")], Recovered::default());
    let (_holder, run, assigned) = f.one_assigned_run().await;
    let intruder = f.register("a2", 1);
    let refused = f
        .report(
            &intruder,
            vec![finished(&assigned, 1, RunStatus::Completed)],
        )
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, crate::protocol::ErrorCode::Forbidden);
    assert!(
        refused.message.contains("assigned to agent `a1`"),
        "{refused}"
    );
    assert_eq!(
        f.status_of(&run),
        Some(RunStatus::Running),
        "nothing applied"
    );
    assert_eq!(f.store.count("late_records").await.unwrap(), 0);
}
