//! What the coordinator keeps is bounded: the queue, the late records, the agents it lists.

use super::*;

#[tokio::test]
async fn a_full_queue_refuses_triggers_and_misses_slots() {
    let mut f = fixture(&[workflow("w", "allow")], Recovered::default());
    for _ in 0..MAX_QUEUED {
        f.trigger("w").await;
    }
    let (reply, rx) = oneshot::channel();
    f.c.trigger(triggering("w", None), reply);
    f.c.store.flush();
    let refused = rx.await.unwrap().unwrap_err();
    assert_eq!(refused.code, crate::protocol::ErrorCode::QueueFull);
    assert!(
        refused.message.contains("principal.max_queued_runs"),
        "{refused}"
    );
    f.c.fire(WorkflowId::new("w"), start(), false);
    f.c.store.flush();
    assert_eq!(f.c.queue.len(), MAX_QUEUED);
    let history = f.store.slot_history("w", 10).await.unwrap();
    assert_eq!(history[0].fate, SlotFate::Missed);
    assert!(history[0]
        .note
        .as_deref()
        .unwrap_or("")
        .contains("queue is full"));
}

#[tokio::test]
async fn records_of_unknown_runs_are_not_stored_but_a_lately_ended_runs_are() {
    let mut f = fixture(&[workflow("w", "allow")], Recovered::default());
    let (_, run, assigned) = f.one_assigned_run().await;
    // Records of a run this principal never had: acknowledged, not stored.
    let mut stranger = finished(&assigned, 1, RunStatus::Completed);
    stranger.run_id = RunId::new("never-queued-here");
    let ack = f
        .report(&AgentId::new("a1"), vec![stranger])
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ack, AgentReply::ReportAck { acks } if acks.len() == 1));
    assert_eq!(f.store.count("late_records").await.unwrap(), 0);
    // The run is crashed (its agent went silent); its agent's late report is kept as
    // evidence, and changes nothing.
    f.clock.advance(TIMEOUT);
    f.c.expire(f.clock.now());
    f.c.store.flush();
    let agent = f.register("a1", 1);
    f.report(&agent, vec![finished(&assigned, 1, RunStatus::Completed)])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.store.count("late_records").await.unwrap(), 1);
    let stored = f.store.get_run(run.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.summary.status, RunStatus::Crashed);
}

#[tokio::test]
async fn agents_no_longer_alive_are_forgotten_after_a_day() {
    let mut f = fixture(&[], Recovered::default());
    f.register("a1", 1);
    f.clock.advance(TIMEOUT);
    f.c.expire(f.clock.now());
    f.c.store.flush();
    assert_eq!(f.c.agents.views()[0].state, AgentState::Lost);
    f.clock
        .advance(crate::principal::coordinator::agents::FORGET_AFTER);
    f.c.expire(f.clock.now());
    f.c.store.flush();
    assert!(f.c.agents.views().is_empty());
}
