//! Scanning a workflow directory: which files count, what their ids are, and the catalog of
//! valid workflows with a report for every file.
//!
//! `*.yml` / `*.yaml` files are read recursively. Hidden entries, other extensions (`.gitkeep`,
//! editor swap files), symlink loops and unreadable files are skipped, never fatal. One invalid
//! file never stops the others from loading.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use walkdir::WalkDir;

use super::diagnostic::Diagnostic;
use super::parse::parse_workflow;
use crate::model::{Workflow, WorkflowId};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("workflow directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is neither a workflow file nor a directory", .0.display())]
    NotWorkflow(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Valid,
    Invalid,
    Skipped,
}

/// What happened to one file.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    pub id: Option<WorkflowId>,
    pub status: FileStatus,
    pub diagnostics: Vec<Diagnostic>,
}

/// A workflow file that failed validation, as listings show it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct InvalidFile {
    pub id: Option<WorkflowId>,
    pub file: PathBuf,
    pub errors: Vec<String>,
    /// The workflow's last valid version is still active (the file broke after loading).
    #[serde(default)]
    pub previous_version_active: bool,
}

/// The valid workflows of a directory, and a report for every workflow file seen.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Moves by one each time the principal replaces its catalog (clients re-read on change).
    pub generation: u64,
    pub workflows: BTreeMap<WorkflowId, Workflow>,
    pub files: Vec<FileReport>,
}

impl Catalog {
    pub fn valid_count(&self) -> usize {
        self.count(FileStatus::Valid)
    }

    pub fn invalid_count(&self) -> usize {
        self.count(FileStatus::Invalid)
    }

    fn count(&self, status: FileStatus) -> usize {
        self.files.iter().filter(|f| f.status == status).count()
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.files.iter().flat_map(|f| f.diagnostics.iter())
    }

    pub fn invalid_files(&self) -> Vec<InvalidFile> {
        self.files
            .iter()
            .filter(|f| f.status == FileStatus::Invalid)
            .map(|f| InvalidFile {
                id: f.id.clone(),
                file: f.file.clone(),
                errors: f
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.to_string())
                    .collect(),
                previous_version_active: f
                    .id
                    .as_ref()
                    .is_some_and(|id| self.workflows.contains_key(id)),
            })
            .collect()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics().any(Diagnostic::is_error)
    }

    fn merge(&mut self, other: Catalog) {
        self.workflows.extend(other.workflows);
        self.files.extend(other.files);
    }
}

/// A workflow's id from its path relative to the workflow directory: extension dropped, `/`
/// replaced by `.` (`etl/daily.yml` is `etl.daily`). None for names that are not UTF-8.
pub fn workflow_id_for(relative: &Path) -> Option<WorkflowId> {
    let without_ext = relative.with_extension("");
    let mut parts = Vec::new();
    for component in without_ext.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| WorkflowId::new(parts.join(".")))
}

fn is_workflow_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml")
    )
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

/// What a scan of a workflow directory found: the files to parse (with their ids) and the
/// entries skipped on the way.
struct Scan {
    candidates: Vec<(PathBuf, WorkflowId)>,
    skipped: Vec<FileReport>,
}

/// Loads every workflow under `dir`.
pub fn load_dir(dir: &Path) -> Result<Catalog, LoadError> {
    let scan = scan(dir)?;
    let mut catalog = Catalog {
        files: scan.skipped,
        ..Catalog::default()
    };
    catalog.merge(load_candidates(scan.candidates));
    Ok(catalog)
}

/// A digest of everything [`load_dir`] would read under `dir` (which files, and their bytes):
/// equal digests mean a reload would change nothing. Reading is cheap next to parsing.
pub fn fingerprint(dir: &Path) -> Result<Fingerprint, LoadError> {
    use sha2::Digest;
    let scan = scan(dir)?;
    let mut hash = sha2::Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    for report in &scan.skipped {
        field(report.file.as_os_str().as_encoded_bytes());
    }
    for (path, _) in &scan.candidates {
        field(path.as_os_str().as_encoded_bytes());
        match std::fs::read(path) {
            Ok(bytes) => field(&bytes),
            Err(e) => field(e.kind().to_string().as_bytes()),
        }
    }
    Ok(Fingerprint(hash.finalize().into()))
}

/// See [`fingerprint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

fn scan(dir: &Path) -> Result<Scan, LoadError> {
    let meta = std::fs::metadata(dir).map_err(|source| LoadError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(LoadError::Dir {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut candidates: Vec<(PathBuf, WorkflowId)> = Vec::new();
    let mut skipped_files = Vec::new();
    let walker = WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                // Symlink loops, broken links and unreadable directories: skip, but say so.
                let path = e.path().unwrap_or(dir).to_path_buf();
                let worth_reporting = e.loop_ancestor().is_some()
                    || is_workflow_file(&path)
                    || std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                if worth_reporting {
                    skipped_files.push(skipped(&path, format!("skipped: {e}")));
                }
                continue;
            }
        };
        let path = entry.path();
        if !is_workflow_file(path) || entry.file_type().is_dir() {
            continue;
        }
        let relative = path.strip_prefix(dir).unwrap_or(path);
        match workflow_id_for(relative) {
            Some(id) => candidates.push((path.to_path_buf(), id)),
            None => skipped_files.push(skipped(path, "skipped: file name is not valid UTF-8")),
        }
    }
    Ok(Scan {
        candidates,
        skipped: skipped_files,
    })
}

/// Loads explicit files and directories (as `cdktr workflow validate a.yml dir/` does). A file's
/// id is its stem; a directory's workflows get ids relative to that directory.
pub fn load_paths(paths: &[PathBuf]) -> Result<Catalog, LoadError> {
    let mut catalog = Catalog::default();
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            catalog.merge(load_dir(path)?);
        } else if path.is_file() && is_workflow_file(path) {
            let name = path.file_name().map(Path::new).unwrap_or(path);
            match workflow_id_for(name) {
                Some(id) => files.push((path.clone(), id)),
                None => catalog
                    .files
                    .push(skipped(path, "skipped: file name is not valid UTF-8")),
            }
        } else if !path.exists() {
            return Err(LoadError::Dir {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            });
        } else {
            return Err(LoadError::NotWorkflow(path.clone()));
        }
    }
    catalog.merge(load_candidates(files));
    Ok(catalog)
}

fn skipped(path: &Path, message: impl Into<String>) -> FileReport {
    FileReport {
        file: path.to_path_buf(),
        id: None,
        status: FileStatus::Skipped,
        diagnostics: vec![Diagnostic::warning(path, message)],
    }
}

/// Parses each file; two files with the same id are both rejected, each naming the other.
fn load_candidates(candidates: Vec<(PathBuf, WorkflowId)>) -> Catalog {
    let mut by_id: BTreeMap<WorkflowId, Vec<PathBuf>> = BTreeMap::new();
    for (path, id) in &candidates {
        by_id.entry(id.clone()).or_default().push(path.clone());
    }
    let mut catalog = Catalog::default();
    for (path, id) in candidates {
        let clashes: Vec<&PathBuf> = by_id[&id].iter().filter(|p| **p != path).collect();
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| "file is not valid UTF-8".to_owned()),
            Err(e) => {
                catalog
                    .files
                    .push(skipped(&path, format!("skipped: cannot read: {e}")));
                continue;
            }
        };
        let mut parsed = match text {
            Ok(text) => parse_workflow(id.clone(), &path, &text),
            Err(msg) => super::parse::Parsed {
                workflow: None,
                diagnostics: vec![Diagnostic::error(&path, msg)],
            },
        };
        if !clashes.is_empty() {
            let others: Vec<String> = clashes.iter().map(|p| p.display().to_string()).collect();
            parsed.diagnostics.push(Diagnostic::error(
                &path,
                format!(
                    "workflow id `{id}` is also the id of {}: rename one of the files",
                    others.join(", ")
                ),
            ));
            parsed.workflow = None;
        }
        let status = if parsed.workflow.is_some() {
            FileStatus::Valid
        } else {
            FileStatus::Invalid
        };
        if let Some(w) = parsed.workflow {
            catalog.workflows.insert(id.clone(), w);
        }
        catalog.files.push(FileReport {
            file: path,
            id: Some(id),
            status,
            diagnostics: parsed.diagnostics,
        });
    }
    catalog
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_relative_paths() {
        let id = |p: &str| workflow_id_for(Path::new(p)).map(|i| i.to_string());
        assert_eq!(id("etl/daily.yml").as_deref(), Some("etl.daily"));
        assert_eq!(id("backup.yaml").as_deref(), Some("backup"));
        assert_eq!(id("a/b/c.yml").as_deref(), Some("a.b.c"));
        assert_eq!(id("../escape.yml"), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn only_yaml_extensions_count() {
        for yes in ["a.yml", "a.yaml", "dir/b.yml"] {
            assert!(is_workflow_file(Path::new(yes)), "{yes}");
        }
        for no in [
            ".gitkeep",
            "README",
            "a.yml.swp",
            "a.yml~",
            "a.json",
            "#a.yml#",
        ] {
            assert!(!is_workflow_file(Path::new(no)), "{no}");
        }
    }
}
