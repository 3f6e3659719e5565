//! The workflow tree: workflows grouped by folder (`etl.daily` under `etl/`, as its file is
//! `etl/daily.yml`), folders foldable, invalid files among them with their first error.

use super::app::{App, View};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    Folder {
        /// `etl` or `etl.nightly`: the id prefix of what is inside.
        path: String,
        depth: usize,
        folded: bool,
        count: usize,
    },
    Workflow {
        id: String,
        depth: usize,
    },
    /// `index` into the listing's invalid files.
    Invalid {
        index: usize,
        depth: usize,
    },
}

/// The rows shown, folders first at each level then workflows, by name; the filter (`/`)
/// keeps workflows whose id contains each of its words, and their folders.
pub fn rows(app: &App) -> Vec<Row> {
    let Some(listing) = &app.data.workflows else {
        return Vec::new();
    };
    let filter = app.filter(View::Workflows);
    let passes = |id: &str| {
        let id = id.to_lowercase();
        super::state::words_match(&filter, &id)
    };
    // (sort key, row): the key is the path of folders with a marker that puts folders
    // before the workflows beside them.
    let mut entries: Vec<(Vec<String>, String, Option<usize>)> = Vec::new();
    for w in &listing.workflows {
        if passes(w.id.as_str()) {
            entries.push((segments(w.id.as_str()), w.id.to_string(), None));
        }
    }
    for (i, f) in listing.invalid.iter().enumerate() {
        let id =
            f.id.as_ref()
                .map(|id| id.to_string())
                .unwrap_or_else(|| f.file.display().to_string());
        // A broken version of a loaded workflow is shown on the workflow's row.
        if f.previous_version_active && f.id.is_some() {
            continue;
        }
        if passes(&id) {
            entries.push((segments(&id), id, Some(i)));
        }
    }
    entries.sort_by_key(|e| sort_key(&e.0));
    let mut rows = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for (segs, id, invalid) in entries {
        let folders = &segs[..segs.len().saturating_sub(1)];
        let common = open.iter().zip(folders).take_while(|(a, b)| a == b).count();
        open.truncate(common);
        for (depth, name) in folders.iter().enumerate().skip(common) {
            open.push(name.clone());
            let path = open.join(".");
            let hidden = is_hidden(app, &open[..depth]);
            if !hidden {
                rows.push(Row::Folder {
                    folded: app.folded.contains(&path),
                    count: 0,
                    path,
                    depth,
                });
            }
        }
        // Entries come in folder order: the open folders are the last rows of their paths.
        for n in 1..=folders.len() {
            *counts.entry(folders[..n].join(".")).or_insert(0) += 1;
        }
        if is_hidden(app, folders) {
            continue;
        }
        let depth = folders.len();
        rows.push(match invalid {
            Some(index) => Row::Invalid { index, depth },
            None => Row::Workflow { id, depth },
        });
    }
    for row in rows.iter_mut() {
        if let Row::Folder { path, count, .. } = row {
            *count = counts.get(path.as_str()).copied().unwrap_or(0);
        }
    }
    rows
}

fn segments(id: &str) -> Vec<String> {
    id.split('.').map(str::to_owned).collect()
}

/// Folders sort before the workflows of the same level.
fn sort_key(segs: &[String]) -> Vec<(u8, String)> {
    let last = segs.len().saturating_sub(1);
    segs.iter()
        .enumerate()
        .map(|(i, s)| (u8::from(i == last), s.clone()))
        .collect()
}

/// Whether something inside `folders` is hidden by a folded folder.
fn is_hidden(app: &App, folders: &[String]) -> bool {
    (1..=folders.len()).any(|n| app.folded.contains(&folders[..n].join(".")))
}

/// The workflow id of the selected row, if it is a workflow.
pub fn selected_workflow(app: &App) -> Option<String> {
    match rows(app).get(app.selection(View::Workflows))? {
        Row::Workflow { id, .. } => Some(id.clone()),
        _ => None,
    }
}
