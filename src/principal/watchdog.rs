//! The principal's health as systemd sees it: a `STATUS=` line (queue, running runs, agents,
//! store) refreshed every few seconds, and `WATCHDOG=1` only while the coordinator, the
//! scheduler and the store's writer all answer. A loop that wedges stops the pings, and
//! systemd restarts the principal (`WatchdogSec=`). A store that refuses writes (a full disk)
//! still answers (it journals them and retries): degraded, shown in the status, but alive, so
//! it causes no restart loop.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::coordinator::CoordinatorHandle;
use super::scheduler::SchedulerHandle;
use crate::model::AgentState;
use crate::protocol::control::StatusView;
use crate::runtime::metrics::METRICS;
use crate::runtime::systemd;
use crate::store::Store;

/// The status line is refreshed at least this often.
const STATUS_EVERY: Duration = Duration::from_secs(5);
const STORE: &str = "store writer";

pub struct Parts {
    pub core: CoordinatorHandle,
    pub scheduler: SchedulerHandle,
    pub store: Store,
}

/// Probes the parts and tells systemd, when systemd is listening (an idle principal started by
/// hand does no work at all; its metrics gauges are read at each scrape).
pub fn spawn(tracker: &TaskTracker, parts: Parts, stop: CancellationToken) {
    if !systemd::enabled() {
        return;
    }
    let watchdog = systemd::watchdog_interval();
    if let Some(every) = watchdog {
        tracing::info!(interval = %humantime::format_duration(every), "systemd watchdog on");
    }
    // systemd's advice: ping at half the interval. A probe gets half a period, so two pings
    // are never more than one and a half periods (three quarters of the interval) apart.
    let period = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    tracker.spawn(async move {
        let mut stuck = false;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut applied = parts.store.progress().position();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let (status, mut blocked) = probe(&parts, period / 2).await;
            // A writer busy applying a long backlog (after a full disk) answers late but moves:
            // that is progress, not a wedge.
            let now_applied = parts.store.progress().position();
            if now_applied != applied {
                blocked.retain(|p| *p != STORE);
            }
            applied = now_applied;
            if blocked.is_empty() {
                if watchdog.is_some() {
                    systemd::watchdog_ping();
                }
                if stuck {
                    tracing::info!("every part answers again");
                    stuck = false;
                }
            } else {
                tracing::error!(parts = %blocked.join(", "), "not answering within {}: the watchdog is not pinged", humantime::format_duration(period));
                stuck = true;
            }
            if let Some(status) = status {
                set_gauges(&status);
                systemd::status(&status_line(&status));
            }
        }
    });
}

/// Asks every part at once; answers the coordinator's status and the parts that did not
/// answer within `within`.
async fn probe(parts: &Parts, within: Duration) -> (Option<StatusView>, Vec<&'static str>) {
    let (core, scheduler, store) = tokio::join!(
        tokio::time::timeout(within, parts.core.status()),
        tokio::time::timeout(within, parts.scheduler.ping()),
        tokio::time::timeout(within, parts.store.ping()),
    );
    let mut blocked = Vec::new();
    let status = match core {
        Ok(Ok(s)) => Some(s),
        _ => {
            blocked.push("coordinator");
            None
        }
    };
    if !matches!(scheduler, Ok(Some(()))) {
        blocked.push("scheduler");
    }
    if !matches!(store, Ok(Ok(()))) {
        blocked.push(STORE);
    }
    (status, blocked)
}

/// Sets the principal's gauges from the coordinator's status and the store's health (before
/// each scrape).
pub fn gauges(core: CoordinatorHandle, store: Store) -> crate::runtime::metrics::Refresh {
    std::sync::Arc::new(move || {
        let (core, store) = (core.clone(), store.clone());
        Box::pin(async move {
            if let Ok(s) = core.status().await {
                set_gauges(&s);
            }
            if let Ok(agents) = core.agents().await {
                for state in AgentState::ALL {
                    let n = agents.iter().filter(|a| a.state == *state).count();
                    METRICS
                        .agents
                        .get_or_create(&vec![("state", state.as_str().to_owned())])
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            let degraded = matches!(store.health(), crate::store::StoreHealth::Degraded { .. });
            METRICS.store_degraded.set(i64::from(degraded));
            let depth = store.unapplied();
            METRICS
                .journal_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        })
    })
}

fn set_gauges(s: &StatusView) {
    let m = &METRICS;
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    m.queue_length.set(n(s.queue_length));
    m.runs_running.set(n(s.runs_active));
    m.workflows
        .get_or_create(&vec![("state", "valid".to_owned())])
        .set(n(s.workflows_loaded));
    m.workflows
        .get_or_create(&vec![("state", "invalid".to_owned())])
        .set(n(s.workflows_invalid));
}

/// `queue 3, running 2, agents 1/1, store ok`.
pub fn status_line(s: &StatusView) -> String {
    format!(
        "queue {}, running {}, agents {}/{}, store {}",
        s.queue_length, s.runs_active, s.agents_alive, s.agents_total, s.store
    )
}
