//! Registration and reports: applying what agents say happened, exactly once per record.

use std::collections::BTreeMap;
use std::time::Instant;

use super::Core;
use crate::model::{AgentId, RunId, RunStatus};
use crate::principal::server::ReplyTo;
use crate::protocol::agent::{AgentInfo, AgentReply, AttemptRef, Record, RecordEvent, RunAck};
use crate::protocol::logs::{LogEvent, LogLine};
use crate::protocol::{storable, ErrorCode, Response};
use crate::store::Write;

impl Core {
    pub(super) fn register(&mut self, info: AgentInfo, running: Vec<AttemptRef>, reply: ReplyTo) {
        let agent_id = info.id.clone();
        tracing::info!(agent = %agent_id, slots = info.slots, running = running.len(), "agent registered");
        let (old_pull, restarted) = self.agents.register(info, Instant::now());
        if let Some(old) = old_pull {
            self.agent_reply(
                &old,
                AgentReply::Work {
                    assignments: vec![],
                },
            );
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
            std::time::Duration::ZERO
        } else {
            self.settings.heartbeat_timeout / 3
        };
        self.reconcile(&agent_id, &running, grace);
        if let Some(w) = self.agents.store_write(&agent_id) {
            self.store.write_later(vec![w]);
        }
        let interval = (self.settings.heartbeat_timeout / 6).as_millis() as u64;
        self.agent_reply(
            &reply,
            AgentReply::Registered {
                heartbeat_interval_ms: interval,
            },
        );
        self.dispatch();
    }

    /// Applies records in order. Each run attempt's records are applied exactly once: a
    /// duplicate (seq already stored) is skipped, a record from a closed or replaced attempt
    /// never changes the run. The acknowledgement is sent once the writes are committed.
    pub(super) fn report(&mut self, agent_id: &AgentId, records: Vec<Record>, reply: ReplyTo) {
        if !self.agents.is_alive(agent_id) {
            self.replier.error(
                &reply,
                ErrorCode::Invalid,
                format!("agent `{agent_id}` is not registered: register first"),
            );
            return;
        }
        if let Err(e) = records.iter().try_for_each(storable_numbers) {
            self.replier.send(&reply, Response::Error(e));
            return;
        }
        let mut writes = Vec::new();
        let mut acks: BTreeMap<(RunId, u32), u64> = BTreeMap::new();
        let mut finished = Vec::new();
        for record in records {
            let key = (record.run_id.clone(), record.attempt);
            let Some(run) = self.runs.get_mut(&record.run_id) else {
                // A run that has ended (or never existed here): kept as a late record and
                // acknowledged so the agent drops it; it changes nothing.
                acks.insert(key, record.seq);
                writes.push(late(record, agent_id, "the run is no longer active"));
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
                } => {
                    let current = run.tasks.get(&task_id).copied();
                    if current.is_some_and(|c| c.can_become(status)) {
                        run.tasks.insert(task_id.clone(), status);
                        writes.push(Write::Task {
                            run_id: run.run_id.clone(),
                            task_id: task_id.clone(),
                            attempt: run.attempt,
                            status,
                            ts: record.ts,
                            exit_code,
                            reason,
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
                    };
                    self.next_log_id += 1;
                    writes.push(Write::Log(line.clone()));
                    self.publisher.publish(LogEvent::Line(line));
                }
                RecordEvent::RunFinished { status } => {
                    if status.is_terminal() && run.status.can_become(status) {
                        run.status = status;
                        writes.push(Write::Run {
                            run_id: run.run_id.clone(),
                            status,
                            ts: record.ts,
                            agent: None,
                            attempt: run.attempt,
                            token: None,
                            reason: None,
                        });
                        finished.push(run.run_id.clone());
                    }
                }
            }
        }
        for ((run_id, attempt), up_to) in &acks {
            if self.runs.get(run_id).is_some_and(|r| r.attempt == *attempt) {
                writes.push(Write::RunSeq {
                    run_id: run_id.clone(),
                    last_seq: *up_to,
                });
            }
        }
        let freed = !finished.is_empty();
        for run_id in finished {
            if let Some(run) = self.runs.remove(&run_id) {
                tracing::info!(run = %run_id, workflow = %run.workflow.id, status = %run.status, "run finished");
                if let Some(agent) = &run.agent {
                    self.agents.remove_run(agent, &run_id);
                }
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
        let replier = self.replier.clone();
        self.pending.spawn(async move {
            match committed.await {
                Ok(()) => replier.send(&reply, Response::Agent(AgentReply::ReportAck { acks })),
                Err(e) => replier.error(&reply, ErrorCode::Unavailable, format!("store: {e}")),
            }
        });
    }
}

/// A record's counters must fit the store: a larger one is refused, never wrapped.
fn storable_numbers(record: &Record) -> Result<(), crate::protocol::ErrorReply> {
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
