//! Fault injection for tests (armed through the `failpoint` request, only on a principal
//! started with `CDKTR_FAILPOINTS=1`).

use super::{Command, Store};

impl Store {
    /// Failpoint for tests: every write fails for `duration` (they are journaled and retried).
    pub fn fail_writes_for(&self, duration: std::time::Duration) {
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let until = now.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self.health
            .fail_until_ms
            .store(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// Failpoint for tests: the next write waits `duration` before it is acknowledged.
    pub fn stall_next_write(&self, duration: std::time::Duration) {
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.health
            .stall_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Failpoint for tests: the writer thread itself stops for `duration`, as a wedged DuckDB
    /// call would (queries and writes wait behind it).
    pub fn wedge_writer_for(&self, duration: std::time::Duration) {
        let _ = self.tx.send(Command::Wedge(duration));
    }
}
