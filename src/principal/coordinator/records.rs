//! What agents say: registration, heartbeats, long polls for work, reports (applied exactly
//! once per record, fenced by attempt and token) and deregistration.

use crate::runtime::metrics::METRICS;
use std::collections::BTreeMap;
use std::time::Duration;

use super::agents::PullReply;
use super::{Coordinator, Reply};
use crate::model::{AgentId, AgentState, RunId, RunStatus, TaskStatus};
use crate::protocol::agent::{
    AgentInfo, AgentReply, AgentRequest, AttemptRef, Record, RecordEvent, RunAck,
};
use crate::protocol::logs::{LogEvent, LogLine};
use crate::protocol::{storable, ErrorCode, ErrorReply};
use crate::store::{TaskTry, Write};

/// Most slots one agent may declare.
const MAX_AGENT_SLOTS: u32 = 10_000;

fn not_registered(agent_id: &AgentId) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::Invalid,
        format!("agent `{agent_id}` is not registered: register first"),
    )
}

impl Coordinator {
    pub(super) fn agent_request(&mut self, request: AgentRequest, reply: Reply<AgentReply>) {
        match request {
            AgentRequest::Register { agent, .. }
                if !(1..=MAX_AGENT_SLOTS).contains(&agent.slots) =>
            {
                let _ = reply.send(Err(ErrorReply::invalid(
                    "slots",
                    format!("{} is not between 1 and {MAX_AGENT_SLOTS}", agent.slots),
                )));
            }
            AgentRequest::Register { agent, running } => self.register(agent, running, reply),
            AgentRequest::Heartbeat {
                agent_id,
                running,
                free_slots,
                spool,
            } => {
                let known = self.agents.heartbeat(
                    &agent_id,
                    (free_slots, spool),
                    self.clock.now(),
                    self.clock.utc(),
                );
                let stop = if known {
                    self.stop_orders(&running)
                } else {
                    Vec::new()
                };
                let _ = reply.send(Ok(AgentReply::HeartbeatAck { known, stop }));
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
            } => self.pull(&agent_id, free_slots, reply),
            AgentRequest::Report { agent_id, records } => self.report(&agent_id, records, reply),
            AgentRequest::Deregister { agent_id } => {
                self.lose_agent(
                    &agent_id,
                    AgentState::Gone,
                    "agent deregistered while the run was active",
                );
                let _ = reply.send(Ok(AgentReply::Deregistered));
            }
        }
    }

    /// A long poll: answered with work as soon as there is some for this agent, or empty when
    /// it expires (or a newer poll of the same agent replaces it).
    fn pull(&mut self, agent_id: &AgentId, free_slots: u32, reply: PullReply) {
        if !self.agents.is_alive(agent_id) {
            let _ = reply.send(Err(not_registered(agent_id)));
            return;
        }
        let now = self.clock.now();
        let expires = now + self.settings.long_poll;
        if let Some(old) = self
            .agents
            .set_pull(agent_id, free_slots, reply, now, expires)
        {
            let _ = old.send(Ok(AgentReply::Work {
                assignments: vec![],
                stop: vec![],
            }));
        }
        self.send_stops(agent_id);
        self.dispatch();
    }

    fn register(&mut self, info: AgentInfo, running: Vec<AttemptRef>, reply: Reply<AgentReply>) {
        let agent_id = info.id.clone();
        tracing::info!(agent = %agent_id, slots = info.slots, running = running.len(), "agent registered");
        let (old_pull, restarted) = self
            .agents
            .register(info, self.clock.now(), self.clock.utc());
        if let Some(old) = old_pull {
            let _ = old.send(Ok(AgentReply::Work {
                assignments: vec![],
                stop: vec![],
            }));
        }
        // Re-adopt attempts this agent still runs (after a principal restart or a reconnect).
        for attempt in &running {
            let Some(run) = self.runs.get_mut(&attempt.run_id) else {
                continue;
            };
            if run.status == RunStatus::Running
                && run.attempt == attempt.attempt
                && run.token == attempt.token
            {
                run.agent = Some(agent_id.clone());
                run.orphan_deadline = None;
                self.agents.add_run(&agent_id, &attempt.run_id);
            }
        }
        // A restarted process runs nothing it held before: reconcile at once. The same process
        // reconnecting may have an assignment still on its way: give it the usual grace.
        let grace = if restarted {
            Duration::ZERO
        } else {
            self.settings.heartbeat_timeout / 3
        };
        self.reconcile(&agent_id, &running, grace);
        if let Some(w) = self.agents.store_write(&agent_id) {
            self.store.write_later(vec![w]);
        }
        let interval = (self.settings.heartbeat_timeout / 6).as_millis();
        let _ = reply.send(Ok(AgentReply::Registered {
            heartbeat_interval_ms: u64::try_from(interval).unwrap_or(u64::MAX),
        }));
        self.dispatch();
    }

    /// Applies records in order. Each run attempt's records are applied exactly once: a
    /// duplicate (seq already stored) is skipped, a record from a closed or replaced attempt
    /// never changes the run. The acknowledgement is sent once the writes are committed.
    fn report(&mut self, agent_id: &AgentId, records: Vec<Record>, reply: Reply<AgentReply>) {
        if !self.agents.is_alive(agent_id) {
            let _ = reply.send(Err(not_registered(agent_id)));
            return;
        }
        if let Err(e) = records.iter().try_for_each(storable_numbers) {
            let _ = reply.send(Err(e));
            return;
        }
        // An agent reports only on runs assigned to it: a report on the current attempt of
        // another agent's run is refused whole (and logged), even with the right token.
        // (Records of an earlier attempt, from an agent that lost the run, stay late records.)
        let foreign = records.iter().find_map(|r| {
            let run = self.runs.get(&r.run_id)?;
            let holder = run.agent.as_ref()?;
            (run.attempt == r.attempt && holder != agent_id)
                .then(|| (r.run_id.clone(), holder.clone()))
        });
        if let Some((run_id, holder)) = foreign {
            tracing::warn!(agent = %agent_id, run = %run_id, holder = %holder, "report refused: the run is assigned to another agent");
            let _ = reply.send(Err(ErrorReply::new(
                ErrorCode::Forbidden,
                format!("run {run_id} is assigned to agent `{holder}`, not `{agent_id}`"),
            )));
            return;
        }
        let mut writes = Vec::new();
        let mut acks: BTreeMap<(RunId, u32), u64> = BTreeMap::new();
        let mut finished = Vec::new();
        let mut unknown = 0usize;
        for record in records {
            let key = (record.run_id.clone(), record.attempt);
            let Some(run) = self.runs.get_mut(&record.run_id) else {
                // Acknowledged so the agent drops it; it changes nothing. A run that ended
                // lately keeps it as a late record; for any other run it is not stored.
                acks.insert(key, record.seq);
                if self.ended.contains(&record.run_id) {
                    writes.push(late(record, agent_id, "the run is no longer active"));
                } else {
                    unknown += 1;
                }
                continue;
            };
            if run.status != RunStatus::Running
                || run.attempt != record.attempt
                || run.token != record.token
            {
                tracing::debug!(run = %record.run_id, attempt = record.attempt, "record of a stale attempt kept as late");
                acks.insert(key, record.seq);
                writes.push(late(record, agent_id, "the attempt was closed or replaced"));
                continue;
            }
            if record.seq <= run.last_seq {
                acks.insert(key, run.last_seq);
                continue;
            }
            if record.seq != run.last_seq + 1 {
                // A gap: wait for the missing record (the agent resends everything unacked).
                continue;
            }
            run.last_seq = record.seq;
            acks.insert(key, record.seq);
            match record.event {
                RecordEvent::Task {
                    task_id,
                    status,
                    exit_code,
                    reason,
                    try_no,
                } => {
                    let current = run.tasks.get(&task_id).copied();
                    if current.is_some_and(|c| c.can_become(status)) {
                        run.tasks.insert(task_id.clone(), status);
                        if status == TaskStatus::Running {
                            if let Some(queued) = run.queued_at.take() {
                                let waited = self.clock.now().duration_since(queued);
                                METRICS.trigger_to_start.observe(waited.as_secs_f64());
                            }
                            run.tries.insert(task_id.clone(), (try_no, record.ts));
                        } else if current == Some(TaskStatus::Running)
                            && (status == TaskStatus::Retrying || try_no > 1)
                        {
                            // A try of a retried task ended: failed and to be retried, or the
                            // task's last. (A task run once has its one try in `task_runs`.)
                            let started = run.tries.remove(&task_id).map(|(_, at)| at);
                            writes.push(Write::TaskTry(TaskTry {
                                run_id: run.run_id.clone(),
                                task_id: task_id.clone(),
                                attempt: run.attempt,
                                try_no,
                                status: if status == TaskStatus::Retrying {
                                    TaskStatus::Failed
                                } else {
                                    status
                                },
                                started_at: started,
                                finished_at: record.ts,
                                exit_code,
                                reason: reason.clone(),
                            }));
                        }
                        writes.push(Write::Task {
                            run_id: run.run_id.clone(),
                            task_id: task_id.clone(),
                            attempt: run.attempt,
                            status,
                            ts: record.ts,
                            exit_code,
                            reason,
                            try_no,
                        });
                        self.publisher.publish(LogEvent::Task {
                            run_id: run.run_id.clone(),
                            workflow_id: run.workflow.id.clone(),
                            task_id,
                            status,
                            exit_code,
                        });
                    }
                }
                RecordEvent::Log {
                    task_id,
                    stream,
                    line_no,
                    line,
                    try_no,
                } => {
                    let line = LogLine {
                        id: self.next_log_id,
                        run_id: run.run_id.clone(),
                        workflow_id: run.workflow.id.clone(),
                        task_id,
                        attempt: run.attempt,
                        stream,
                        seq: line_no,
                        ts: record.ts,
                        line,
                        try_no,
                    };
                    self.next_log_id += 1;
                    METRICS.log_lines.inc();
                    writes.push(Write::Log(line.clone()));
                    self.publisher.publish(LogEvent::Line(line));
                }
                RecordEvent::RunFinished { status } => {
                    // A cancelled run never ends COMPLETED: the operator asked for it to stop.
                    let (status, reason) = match &run.cancel {
                        Some(why)
                            if matches!(status, RunStatus::Completed | RunStatus::Cancelled) =>
                        {
                            (RunStatus::Cancelled, Some(why.clone()))
                        }
                        _ => (status, None),
                    };
                    if status.is_terminal() && run.status.can_become(status) {
                        run.status = status;
                        writes.push(Write::Run {
                            run_id: run.run_id.clone(),
                            status,
                            ts: record.ts,
                            agent: None,
                            attempt: run.attempt,
                            token: None,
                            reason,
                        });
                        finished.push(run.run_id.clone());
                    }
                }
            }
        }
        for ((run_id, attempt), up_to) in &acks {
            // A run that finished here needs no cursor: nothing of it is replayed any more.
            let active = self.runs.get(run_id).is_some_and(|r| r.attempt == *attempt);
            if active && !finished.contains(run_id) {
                writes.push(Write::RunSeq {
                    run_id: run_id.clone(),
                    last_seq: *up_to,
                });
            }
        }
        if unknown > 0 {
            tracing::warn!(agent = %agent_id, records = unknown, "records for runs this principal does not know: acknowledged, not stored");
        }
        let freed = !finished.is_empty();
        for run_id in finished {
            if let Some(run) = self.runs.remove(&run_id) {
                self.ended.remember(run_id.clone(), run.stop_order());
                tracing::info!(run = %run_id, workflow = %run.workflow.id, status = %run.status, "run finished");
                if let Some(agent) = &run.agent {
                    self.agents.remove_run(agent, &run_id);
                }
                METRICS.run_ended(run.status.as_str());
                self.publisher.publish(LogEvent::RunEnded {
                    run_id,
                    workflow_id: run.workflow.id,
                    status: run.status,
                });
            }
        }
        if freed {
            self.dispatch();
        }
        let acks: Vec<RunAck> = acks
            .into_iter()
            .map(|((run_id, attempt), up_to)| RunAck {
                run_id,
                attempt,
                up_to,
            })
            .collect();
        let committed = self.store.submit(writes);
        self.pending.spawn(async move {
            let result = match committed.await {
                Ok(()) => Ok(AgentReply::ReportAck { acks }),
                Err(e) => Err(ErrorReply::new(
                    ErrorCode::Unavailable,
                    format!("store: {e}"),
                )),
            };
            let _ = reply.send(result);
        });
    }
}

/// A record's counters must fit the store: a larger one is refused, never wrapped.
fn storable_numbers(record: &Record) -> Result<(), ErrorReply> {
    storable("seq", record.seq)?;
    if let RecordEvent::Log { line_no, .. } = &record.event {
        storable("line_no", *line_no)?;
    }
    Ok(())
}

fn late(record: Record, agent: &AgentId, reason: &str) -> Write {
    Write::Late {
        record,
        agent: agent.clone(),
        reason: reason.to_owned(),
    }
}
