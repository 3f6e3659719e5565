//! The write-ahead journal: every batch of writes is appended here and fsynced before it is
//! acknowledged, then applied to DuckDB behind it (`sequencer.rs`). One JSON line per batch,
//! `{"seq":N,"writes":[...]}`, with sequence numbers that only grow; DuckDB records the last
//! one it applied in the same transaction (`journal_applied`), so a restart applies exactly
//! the batches after it, and never one twice.
//!
//! The journal is cut into segment files beside the database, `<db>.journal-<first seq>`;
//! the writer starts a new segment past [`SEGMENT_BYTES`] and deletes a closed segment once
//! DuckDB has applied all of it, so the journal holds what DuckDB has not applied yet plus at
//! most one segment; a clean shutdown removes it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use super::Write;

/// A segment past this size is closed and a new one started.
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(serde::Serialize)]
struct EntryOut<'a> {
    seq: u64,
    writes: &'a [Write],
}

#[derive(serde::Deserialize)]
struct EntryIn {
    seq: u64,
    writes: Vec<Write>,
}

/// The writer's side: appends, starts segments, removes applied ones.
pub struct Journal {
    db: PathBuf,
    segment_bytes: u64,
    active: Option<Active>,
    /// Closed segments with the last sequence number each holds.
    closed: Vec<(PathBuf, u64)>,
}

struct Active {
    file: File,
    path: PathBuf,
    len: u64,
    last_seq: u64,
}

impl Journal {
    /// The journal of the database at `db`. Segments already on disk are not touched: the
    /// store applies and removes them before it starts writing (`replay`).
    pub fn new(db: &Path, segment_bytes: u64) -> Journal {
        Journal {
            db: db.to_path_buf(),
            segment_bytes,
            active: None,
            closed: Vec::new(),
        }
    }

    /// Appends one batch durably (written and fdatasync'ed). A failed append is cut off
    /// again, so a segment never holds half a line that a later line follows.
    pub fn append(&mut self, seq: u64, writes: &[Write]) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec(&EntryOut { seq, writes })?;
        bytes.push(b'\n');
        if self.active.is_none() {
            let path = segment_path(&self.db, seq);
            let file = crate::runtime::files::private_file()
                .create(true)
                .append(true)
                .open(&path)?;
            sync_dir(&self.db)?;
            let len = file.metadata()?.len();
            self.active = Some(Active {
                file,
                path,
                len,
                last_seq: seq,
            });
        }
        let Some(active) = self.active.as_mut() else {
            return Err(std::io::Error::other("no journal segment"));
        };
        let written = active
            .file
            .write_all(&bytes)
            .and_then(|()| active.file.sync_data());
        if let Err(e) = written {
            let _ = active.file.set_len(active.len);
            return Err(e);
        }
        active.len += bytes.len() as u64;
        active.last_seq = seq;
        if active.len >= self.segment_bytes {
            if let Some(done) = self.active.take() {
                self.closed.push((done.path, done.last_seq));
            }
        }
        Ok(())
    }

    /// Removes the closed segments DuckDB has applied entirely (everything up to `applied`).
    pub fn release(&mut self, applied: u64) {
        self.closed.retain(|(path, last)| {
            if *last > applied {
                return true;
            }
            match std::fs::remove_file(path) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "cannot remove an applied journal segment");
                    true
                }
            }
        });
    }
}

fn segment_path(db: &Path, first_seq: u64) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".journal-{first_seq:020}"));
    db.with_file_name(name)
}

/// The segments on disk, oldest first.
fn segments(db: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut prefix = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    prefix.push(".journal-");
    let prefix = prefix.to_string_lossy().into_owned();
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(first) = name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

pub fn remove_segments(db: &Path) -> std::io::Result<()> {
    for path in segments(db)? {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    sync_dir(db)
}

/// Calls `each` with every batch after `after` up to `through` (all when None), in order. A
/// line that cannot be read (the end of an append cut short by a crash: never acknowledged)
/// is skipped with a warning.
pub fn read(
    db: &Path,
    after: u64,
    through: Option<u64>,
    mut each: impl FnMut(u64, Vec<Write>) -> Result<(), super::StoreError>,
) -> Result<(), super::StoreError> {
    let io = |path: &Path, e: std::io::Error| {
        super::StoreError::Write(format!("reading the journal {}: {e}", path.display()))
    };
    let paths = segments(db).map_err(|e| io(db, e))?;
    for path in paths {
        let file = match File::open(&path) {
            Ok(f) => f,
            // Removed since listed: applied meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path, e)),
        };
        for line in BufReader::new(file).split(b'\n') {
            let line = line.map_err(|e| io(&path, e))?;
            let entry: EntryIn = match serde_json::from_slice(&line) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "skipping an unreadable journal line");
                    continue;
                }
            };
            if through.is_some_and(|t| entry.seq > t) {
                return Ok(());
            }
            if entry.seq > after {
                each(entry.seq, entry.writes)?;
            }
        }
    }
    Ok(())
}

/// Makes a new or removed segment's directory entry durable.
fn sync_dir(db: &Path) -> std::io::Result<()> {
    match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}
