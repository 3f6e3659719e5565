//! `cdktr listen files`: a file arriving in a directory (created or moved in) whose name
//! matches a glob pattern triggers a run of a workflow, with the file's absolute path as a
//! parameter. Each path triggers once per listener.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{CreateKind, ModifyKind, RenameMode};
use notify::EventKind;
use tokio::sync::mpsc;

use super::TriggerClient;

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
    pub async fn run(self, client: TriggerClient, on_ready: impl FnOnce()) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let handler = move |result: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = result else { return };
            for event in events {
                let arrived = matches!(
                    event.kind,
                    EventKind::Create(CreateKind::File | CreateKind::Any)
                        | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                );
                if arrived {
                    for path in &event.paths {
                        let _ = tx.send(path.clone());
                    }
                }
            }
        };
        let mut debouncer =
            notify_debouncer_full::new_debouncer(Duration::from_millis(300), None, handler)?;
        debouncer.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
        on_ready();
        let mut seen = HashSet::new();
        while let Some(path) = rx.recv().await {
            if !self.matches(&path) || !path.is_file() || !seen.insert(path.clone()) {
                continue;
            }
            let params = BTreeMap::from([(self.param.clone(), path.display().to_string())]);
            match client.trigger(&self.workflow, params, "event:files").await {
                Ok(run_id) => {
                    tracing::info!(file = %path.display(), run = %run_id, "file arrived: run queued");
                    use std::io::Write;
                    let _ = writeln!(std::io::stdout().lock(), "{} -> {run_id}", path.display());
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "file arrived but the trigger failed");
                    // Let a later event for the same path try again.
                    seen.remove(&path);
                }
            }
        }
        Ok(())
    }
}
