//! The agent's stop (`agent.shutdown`): drain lets running tasks finish, taking no new work,
//! and cancels whatever still runs at `agent.shutdown_timeout`; cancel stops them at once and
//! waits up to that long for them to end. Also the agent's metrics gauges.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::reporter::Reporter;
use super::{Running, DRAIN_LIMIT};
use crate::config::{AgentConfig, ShutdownMode};
use crate::runtime::metrics::{Refresh, METRICS};

/// Ends the agent's runs as its configuration says; returns when none is left or the limits
/// have passed.
pub(super) async fn end_runs(
    config: &AgentConfig,
    running: &Running,
    runs_cancel: &CancellationToken,
    tracker: &TaskTracker,
) {
    let limit = config.shutdown_timeout;
    let within = |d: Duration| tokio::time::timeout(d, tracker.wait());
    match config.shutdown {
        ShutdownMode::Drain => {
            tracing::info!(runs = running.len(), limit = %humantime::format_duration(limit), "draining: the running tasks finish, no new work is taken");
            if within(limit).await.is_err() {
                tracing::warn!(
                    runs = running.len(),
                    "runs still running after the shutdown timeout: cancelling them"
                );
                runs_cancel.cancel();
                if within(DRAIN_LIMIT).await.is_err() {
                    tracing::warn!(
                        "runs did not end within {}s of their cancel",
                        DRAIN_LIMIT.as_secs()
                    );
                }
            }
        }
        ShutdownMode::Cancel => {
            runs_cancel.cancel();
            if within(limit).await.is_err() {
                tracing::warn!(
                    "runs did not end within the shutdown timeout ({})",
                    humantime::format_duration(limit)
                );
            }
        }
    }
}

/// Sets the agent's gauges before each scrape.
pub(super) fn gauges(reporter: Reporter, running: Running, slots: u32) -> Refresh {
    Arc::new(move || {
        METRICS.agent_slots.set(i64::from(slots));
        let runs = i64::try_from(running.len()).unwrap_or(i64::MAX);
        METRICS.agent_runs_running.set(runs);
        let depth = i64::try_from(reporter.unacknowledged()).unwrap_or(i64::MAX);
        METRICS.agent_spool_depth.set(depth);
        Box::pin(async {})
    })
}
