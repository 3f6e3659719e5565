//! Applies `[retention]` in the background: a first pass a minute after the start, then one
//! every `retention.interval`. Each pass removes a short transaction's worth at a time on the
//! store's writer, so triggers and ingest (acknowledged once journaled) never wait for it.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RetentionConfig;
use crate::store::Store;

pub fn spawn(
    tracker: &TaskTracker,
    store: Store,
    config: RetentionConfig,
    stop: CancellationToken,
) {
    let policy = config.policy();
    if policy.is_empty() {
        return;
    }
    tracker.spawn(async move {
        let mut wait = config.interval.min(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = config.interval;
            match store.gc(policy, false).await {
                Ok(report) if !report.removed.is_empty() => tracing::info!(
                    runs = report.removed.runs,
                    log_lines = report.removed.log_lines,
                    log_bytes = report.removed.log_bytes,
                    schedule_slots = report.removed.schedule_slots,
                    audit_entries = report.removed.audit_entries,
                    file_bytes = report.file_bytes_after,
                    ms = report.elapsed_ms,
                    "retention removed old history"
                ),
                Ok(_) => tracing::debug!("retention: nothing to remove"),
                Err(e) => tracing::warn!(error = %e, "retention pass failed; it is tried again at the next interval"),
            }
        }
    });
}
