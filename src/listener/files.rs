//! `cdktr listen files`: a file arriving in a directory (created or moved in) whose name
//! matches a glob pattern triggers a run of a workflow, with the file's absolute path as a
//! parameter. Each path triggers once per listener.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{CreateKind, ModifyKind, RenameMode};
use notify::EventKind;
use tokio::sync::mpsc;

use crate::transport::Client;
use crate::transport::ClientError;

pub struct FileListener {
    pub dir: PathBuf,
    pub pattern: glob::Pattern,
    pub workflow: String,
    /// The parameter the path is passed in (the workflow must declare it).
    pub param: String,
}

impl FileListener {
    pub fn new(
        dir: &Path,
        pattern: &str,
        workflow: String,
        param: String,
    ) -> anyhow::Result<FileListener> {
        let pattern = glob::Pattern::new(pattern)
            .map_err(|e| anyhow::anyhow!("--pattern `{pattern}`: {e}"))?;
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| anyhow::anyhow!("--dir {}: {e}", dir.display()))?;
        Ok(FileListener {
            dir,
            pattern,
            workflow,
            param,
        })
    }

    fn matches(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && self.pattern.matches(n))
    }

    /// Watches until the process ends; `on_ready` is called once the watch is in place.
    pub async fn run(self, client: Client, on_ready: impl FnOnce()) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
        let handler = move |result: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = result else { return };
            for event in events {
                let change: fn(PathBuf) -> Change = match event.kind {
                    EventKind::Create(CreateKind::File | CreateKind::Any)
                    | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Change::Arrived,
                    EventKind::Remove(_)
                    | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Change::Gone,
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                        // paths[0] left, paths[1] arrived.
                        if let [from, to] = &event.paths[..] {
                            let _ = tx.send(Change::Gone(from.clone()));
                            let _ = tx.send(Change::Arrived(to.clone()));
                        }
                        continue;
                    }
                    _ => continue,
                };
                for path in &event.paths {
                    let _ = tx.send(change(path.clone()));
                }
            }
        };
        let mut debouncer =
            notify_debouncer_full::new_debouncer(Duration::from_millis(300), None, handler)?;
        debouncer.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
        on_ready();
        // A path triggers once while it is there; removed and dropped in again, it triggers again.
        let mut present = HashSet::new();
        while let Some(change) = rx.recv().await {
            let path = match change {
                Change::Gone(path) => {
                    if present.remove(&path) {
                        tracing::info!(file = %path.display(), "file left; it triggers again if it comes back");
                    }
                    continue;
                }
                Change::Arrived(path) => path,
            };
            if !self.matches(&path) || !path.is_file() || !present.insert(path.clone()) {
                continue;
            }
            let params = BTreeMap::from([(self.param.clone(), path.display().to_string())]);
            tokio::spawn(trigger_with_retries(
                client.clone(),
                self.workflow.clone(),
                params,
                path,
            ));
        }
        Ok(())
    }
}

enum Change {
    Arrived(PathBuf),
    Gone(PathBuf),
}

/// Triggers the run; while the principal cannot take it (restarting, unreachable), tries
/// again with back-off for about two minutes before giving up loudly.
async fn trigger_with_retries(
    client: Client,
    workflow: String,
    params: BTreeMap<String, String>,
    path: PathBuf,
) {
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=8 {
        match client
            .trigger(&workflow, params.clone(), "event:files")
            .await
        {
            Ok(run_id) => {
                tracing::info!(file = %path.display(), run = %run_id, "file arrived: run queued");
                use std::io::Write;
                let _ = writeln!(std::io::stdout().lock(), "{} -> {run_id}", path.display());
                return;
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Remote(_)))
                if retryable(&e) && attempt < 8 =>
            {
                tracing::warn!(file = %path.display(), error = %e, attempt, "trigger failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "file arrived but the run could not be triggered");
                return;
            }
        }
    }
}

fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { .. } => true,
        ClientError::Remote(r) => r.code == crate::protocol::ErrorCode::Unavailable,
        _ => false,
    }
}
