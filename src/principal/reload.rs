//! Keeping the catalog current: the workflow directory is watched (debounced) and rescanned
//! every `principal.rescan_interval` for changes the watch missed; both reload only when the
//! tree's content changed. SIGHUP and `cdktr workflow reload` reload on demand. A file edited into an invalid state keeps its last
//! valid version active (the error is reported), so a typo never unschedules a workflow.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::PrincipalConfig;
use crate::runtime::systemd;
use crate::workflow::{load_dir, Catalog, Diagnostic, Fingerprint};

/// How long file events settle before a reload (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(150);

#[derive(Clone)]
pub struct ReloadHandle {
    tx: mpsc::UnboundedSender<oneshot::Sender<(usize, usize)>>,
}

impl ReloadHandle {
    /// Reloads now; answers (valid, invalid) once the new catalog is active.
    pub async fn reload(&self) -> Option<(usize, usize)> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(reply).ok()?;
        rx.await.ok()
    }
}

/// What was loaded last: the catalog, and the fingerprint of the tree it came from (taken
/// before reading the files, so a change made during the load is seen at the next check).
pub struct Loaded {
    pub catalog: Catalog,
    pub fingerprint: Option<Fingerprint>,
}

/// The catalog at start: empty (and logged) if the directory cannot be read.
pub async fn load(config: &PrincipalConfig) -> Loaded {
    let fingerprint = fingerprint(config).await;
    Loaded {
        catalog: try_load(config).await.unwrap_or_default(),
        fingerprint,
    }
}

/// The directory's catalog, or None (logged) when it cannot be read.
async fn try_load(config: &PrincipalConfig) -> Option<Catalog> {
    let dir = config.workflow_dir.clone();
    match tokio::task::spawn_blocking(move || load_dir(&dir)).await {
        Ok(Ok(catalog)) => {
            for d in catalog.diagnostics() {
                tracing::warn!("{d}");
            }
            tracing::info!(
                dir = %config.workflow_dir.display(),
                valid = catalog.valid_count(),
                invalid = catalog.invalid_count(),
                "workflows loaded"
            );
            Some(catalog)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the workflow directory; keeping the workflows loaded before");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "workflow loader failed; keeping the workflows loaded before");
            None
        }
    }
}

/// `fresh` with the previous valid version of every workflow whose file is now invalid.
pub fn keep_last_valid(previous: &Catalog, mut fresh: Catalog) -> Catalog {
    for report in fresh.files.iter_mut() {
        let Some(id) = report.id.clone() else {
            continue;
        };
        if report.status != crate::workflow::FileStatus::Invalid
            || fresh.workflows.contains_key(&id)
        {
            continue;
        }
        if let Some(old) = previous.workflows.get(&id) {
            fresh.workflows.insert(id.clone(), old.clone());
            report.diagnostics.push(Diagnostic::warning(
                &report.file,
                "the last valid version of this workflow stays active until the file is fixed",
            ));
            tracing::warn!(workflow = %id, "invalid edit: keeping the last valid version");
        }
    }
    fresh
}

/// Why the reloader woke up.
enum Cause {
    /// SIGHUP or a `reload` request (answered with the counts): always reloads.
    Asked(Option<oneshot::Sender<(usize, usize)>>),
    /// The watch saw a change, or the periodic rescan is due: reloads only if the tree's
    /// content differs from what was loaded last.
    Maybe,
}

pub fn spawn(
    tracker: &TaskTracker,
    config: PrincipalConfig,
    catalog: watch::Sender<Arc<Catalog>>,
    mut loaded: Option<Fingerprint>,
    sighup: Arc<Notify>,
    stop: CancellationToken,
) -> ReloadHandle {
    let (tx, mut requests) = mpsc::unbounded_channel::<oneshot::Sender<(usize, usize)>>();
    let (fs_tx, mut fs_events) = mpsc::unbounded_channel::<()>();
    let watcher = watch_dir(&config.workflow_dir, fs_tx);
    // Without a watcher its channel closes at once; SIGHUP, requests and rescans still reload.
    let mut watching = watcher.is_some();
    tracker.spawn(async move {
        let _watcher = watcher; // Dropping it stops the watch.
        let mut rescan = tokio::time::interval(config.rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.reset();
        loop {
            let cause = tokio::select! {
                _ = stop.cancelled() => return,
                _ = sighup.notified() => Cause::Asked(None),
                event = fs_events.recv(), if watching => {
                    if event.is_none() {
                        watching = false;
                        continue;
                    }
                    // Let the change settle (editors write in several steps), then check once.
                    tokio::time::sleep(DEBOUNCE).await;
                    while fs_events.try_recv().is_ok() {}
                    Cause::Maybe
                }
                _ = rescan.tick() => Cause::Maybe,
                r = requests.recv() => match r {
                    Some(r) => Cause::Asked(Some(r)),
                    None => return,
                },
            };
            let signalled = matches!(cause, Cause::Asked(None));
            if signalled {
                systemd::reloading();
            }
            let now = fingerprint(&config).await;
            let reply = match cause {
                Cause::Asked(reply) => reply,
                Cause::Maybe if now.is_some() && now == loaded => continue,
                Cause::Maybe => None,
            };
            rescan.reset();
            let Some(fresh) = try_load(&config).await else {
                // The directory could not be read: keep everything as it is.
                if signalled {
                    systemd::reloaded("reload failed: the workflow directory cannot be read");
                }
                if let Some(reply) = reply {
                    let current = catalog.borrow();
                    let _ = reply.send((current.workflows.len(), current.invalid_count()));
                }
                continue;
            };
            loaded = now;
            let mut merged = keep_last_valid(&catalog.borrow(), fresh);
            merged.generation = catalog.borrow().generation + 1;
            let counts = (merged.workflows.len(), merged.invalid_count());
            catalog.send_replace(Arc::new(merged));
            if signalled {
                systemd::reloaded(&format!(
                    "reloaded: {} workflows, {} invalid",
                    counts.0, counts.1
                ));
            }
            if let Some(reply) = reply {
                let _ = reply.send(counts);
            }
        }
    });
    ReloadHandle { tx }
}

/// The tree's fingerprint, or None when it cannot be read (logged by the load that follows).
async fn fingerprint(config: &PrincipalConfig) -> Option<Fingerprint> {
    let dir = config.workflow_dir.clone();
    tokio::task::spawn_blocking(move || crate::workflow::fingerprint(&dir))
        .await
        .ok()?
        .ok()
}

/// Watches the directory tree (the directories, not the files: editors save by rename). The
/// watch is event-driven (no polling thread): an idle principal does no work at all.
fn watch_dir(dir: &Path, events: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let handler = move |result: notify::Result<notify::Event>| {
        // Reading the tree opens its files and directories: those access events must not
        // start the next reload (they did, six times a second, for any nested tree).
        let changed = match result {
            Ok(event) => !event.kind.is_access(),
            Err(_) => true,
        };
        if changed {
            let _ = events.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the workflow directory; reload with SIGHUP or `cdktr workflow reload`");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::Recursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the workflow directory; reload with SIGHUP or `cdktr workflow reload`");
        return None;
    }
    Some(watcher)
}
