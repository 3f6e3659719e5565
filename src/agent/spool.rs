//! The agent's outbox: records wait here until the principal acknowledges them. At most
//! `limit` records are kept in memory; beyond that they are appended to a spool file under the
//! agent's data directory and read back, in order, as acknowledgements free memory. So a long
//! partition costs disk, not memory, and loses nothing.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use crate::protocol::agent::{Record, RunAck};

pub struct Spool {
    memory: VecDeque<Record>,
    limit: usize,
    path: PathBuf,
    file: Option<SpillFile>,
}

struct SpillFile {
    writer: BufWriter<File>,
    reader: BufReader<File>,
    /// Records in the file not read back yet.
    pending: usize,
    /// Bytes of complete records written; a failed write is cut back to this.
    good_len: u64,
}

impl Spool {
    pub fn new(path: PathBuf, limit: usize) -> Spool {
        Spool {
            memory: VecDeque::new(),
            limit: limit.max(1),
            path,
            file: None,
        }
    }

    /// Records waiting, in memory and on disk.
    pub fn len(&self) -> usize {
        self.memory.len() + self.file.as_ref().map_or(0, |f| f.pending)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn in_memory(&self) -> &VecDeque<Record> {
        &self.memory
    }

    pub fn push(&mut self, record: Record) {
        if self.file.is_none() && self.memory.len() < self.limit {
            self.memory.push_back(record);
            return;
        }
        if let Err(e) = self.spill(&record) {
            // Losing a record is worse than using memory: keep it, and say so.
            tracing::warn!(error = %e, path = %self.path.display(), "cannot spill to the spool file; keeping the record in memory");
            self.memory.push_back(record);
        }
    }

    fn spill(&mut self, record: &Record) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                crate::runtime::files::private_dir(dir)?;
            }
            let writer = crate::runtime::files::private_file()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            let reader = File::open(&self.path)?;
            tracing::warn!(path = %self.path.display(), "principal not acknowledging: spilling records to disk");
            self.file = Some(SpillFile {
                writer: BufWriter::new(writer),
                reader: BufReader::new(reader),
                pending: 0,
                good_len: 0,
            });
        }
        if let Some(f) = self.file.as_mut() {
            let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            let written = f.writer.write_all(&line).and_then(|()| f.writer.flush());
            if let Err(e) = written {
                // Never leave half a record in the file: cut it back and drop what the buffer
                // still holds (the caller keeps the record in memory).
                let file = f.writer.get_ref().try_clone()?;
                file.set_len(f.good_len)?;
                f.writer = BufWriter::new(OpenOptions::new().append(true).open(&self.path)?);
                return Err(e);
            }
            f.good_len += line.len() as u64;
            f.pending += 1;
        }
        Ok(())
    }

    /// Drops what `acks` cover and refills memory from the spool file.
    ///
    /// Only the oldest `sent` records can be acknowledged (nothing after them was sent, and
    /// records are kept in the order they were made), so only those are looked at: an
    /// acknowledgement costs the size of a report, not of everything buffered.
    pub fn acknowledge(&mut self, acks: &[RunAck], sent: usize) -> usize {
        let sent = sent.min(self.memory.len());
        let kept: Vec<Record> = self
            .memory
            .drain(..sent)
            .filter(|r| {
                !acks
                    .iter()
                    .any(|a| a.run_id == r.run_id && a.attempt == r.attempt && r.seq <= a.up_to)
            })
            .collect();
        let removed = sent - kept.len();
        for r in kept.into_iter().rev() {
            self.memory.push_front(r);
        }
        if let Err(e) = self.refill() {
            tracing::error!(error = %e, path = %self.path.display(), "cannot read the spool file back");
        }
        removed
    }

    fn refill(&mut self) -> std::io::Result<()> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        f.writer.flush()?;
        let mut line = String::new();
        while self.memory.len() < self.limit && f.pending > 0 {
            line.clear();
            if f.reader.read_line(&mut line)? == 0 {
                break;
            }
            f.pending -= 1;
            match serde_json::from_str(&line) {
                Ok(record) => self.memory.push_back(record),
                Err(e) => tracing::error!(error = %e, "unreadable spooled record skipped"),
            }
        }
        if f.pending == 0 {
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunId, TaskId};
    use crate::protocol::agent::{RecordEvent, Stream};

    fn record(seq: u64) -> Record {
        Record {
            run_id: RunId::new("r"),
            attempt: 1,
            token: "t".into(),
            seq,
            ts: chrono::Utc::now(),
            event: RecordEvent::Log {
                try_no: 1,
                task_id: TaskId::new("a"),
                stream: Stream::Stdout,
                line_no: seq,
                line: format!("line {seq}"),
            },
        }
    }

    fn ack(up_to: u64) -> RunAck {
        RunAck {
            run_id: RunId::new("r"),
            attempt: 1,
            up_to,
        }
    }

    #[test]
    fn overflow_goes_to_disk_and_comes_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool/agent.jsonl");
        let mut spool = Spool::new(path.clone(), 3);
        for seq in 1..=10 {
            spool.push(record(seq));
        }
        assert_eq!(spool.len(), 10);
        assert_eq!(spool.in_memory().len(), 3, "memory stays bounded");
        assert!(path.is_file());
        let mut seen = Vec::new();
        while !spool.is_empty() {
            let batch: Vec<u64> = spool.in_memory().iter().map(|r| r.seq).collect();
            seen.extend(batch.iter().copied());
            spool.acknowledge(&[ack(*batch.last().unwrap())], batch.len());
            // New records keep their place behind the spilled ones.
            if seen.len() == 3 {
                spool.push(record(11));
            }
        }
        assert_eq!(seen, (1..=11).collect::<Vec<_>>());
        assert!(!path.exists(), "the spool file is removed once drained");
    }
}
