//! The sequencer thread: where writes are acknowledged. It folds the writes that arrive
//! together into one batch, numbers it, appends it to the journal with `fdatasync` (a fraction
//! of a millisecond, against several for a DuckDB commit), hands it to the owner thread, and
//! only then acknowledges it. Queries pass through the same queue behind the writes sent
//! before them, so whoever has seen a write acknowledged reads it back.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use super::journal::Journal;
use super::owner::{Health, Work};
use super::{Command, StoreError, Write};

/// How many queued commands are folded into one batch at most.
const MAX_GROUP_COMMANDS: usize = 512;
/// How many writes one batch holds at most.
const MAX_GROUP_WRITES: usize = 50_000;
/// Writes acknowledged but not yet in DuckDB beyond which new writes wait for it to catch up:
/// the owner's queue stays bounded however fast writes come.
const MAX_UNAPPLIED_WRITES: u64 = 200_000;
/// Writes held while DuckDB refuses them; beyond this, writes are refused.
pub const MAX_BACKLOG_WRITES: u64 = 2_000_000;

pub struct Sequencer {
    pub journal: Journal,
    pub next_seq: u64,
    pub health: Arc<Health>,
    pub owner: Sender<Work>,
}

impl Sequencer {
    pub fn run(mut self, rx: Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut writes: Vec<Write> = Vec::new();
            let mut replies = Vec::new();
            let mut queries = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Write(w, r) => {
                        writes.extend(w);
                        replies.extend(r);
                    }
                    other => queries.push(other),
                }
                if replies.len() + queries.len() < MAX_GROUP_COMMANDS
                    && writes.len() < MAX_GROUP_WRITES
                {
                    next = rx.try_recv().ok();
                }
            }
            let stall = self.health.stall_ms.swap(0, Ordering::Relaxed);
            if stall > 0 {
                std::thread::sleep(Duration::from_millis(stall));
            }
            let result = if writes.is_empty() {
                Ok(())
            } else {
                self.journal_and_forward(writes)
            };
            for query in queries {
                let _ = self.owner.send(Work::Query(query));
            }
            for reply in replies {
                let _ = reply.send(result.clone());
            }
            self.journal
                .release(self.health.applied_seq.load(Ordering::Acquire));
        }
    }

    /// Makes one batch durable in the journal and hands it to the owner; Ok means durable.
    fn journal_and_forward(&mut self, writes: Vec<Write>) -> Result<(), StoreError> {
        let count = writes.len() as u64;
        loop {
            let unapplied = self.health.unapplied();
            if self.health.is_degraded() {
                if unapplied + count > MAX_BACKLOG_WRITES {
                    return Err(StoreError::Write(format!(
                        "the database refuses writes and {unapplied} writes already wait for it"
                    )));
                }
                break;
            }
            if unapplied < MAX_UNAPPLIED_WRITES {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let seq = self.next_seq;
        self.journal.append(seq, &writes).map_err(|e| {
            StoreError::Write(format!(
                "the journal beside the database cannot be written: {e}"
            ))
        })?;
        self.next_seq += 1;
        self.health.forwarded.fetch_add(count, Ordering::AcqRel);
        if writes.iter().any(Write::changes_views) {
            self.health.changes.fetch_add(1, Ordering::AcqRel);
        }
        self.owner
            .send(Work::Entry { seq, writes })
            .map_err(|_| StoreError::Closed)
    }
}

impl super::Store {
    /// A counter that moves whenever a batch changing what a list shows is acknowledged:
    /// clients poll it (in `status`) and re-read lists only when it moved.
    pub fn changes(&self) -> u64 {
        self.health.changes.load(Ordering::Acquire)
    }
}

impl super::Batch {
    pub fn changes(&self) -> u64 {
        self.store.changes()
    }
}
