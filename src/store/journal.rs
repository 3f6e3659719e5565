//! The write-ahead journal used while DuckDB refuses writes: one JSON line per batch, appended
//! and fsynced before the batch is acknowledged, replayed in order once DuckDB accepts writes
//! again (and on start, after a crash), then truncated.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use super::Write;

pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn beside(db: &Path) -> Journal {
        let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".journal");
        Journal {
            path: db.with_file_name(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one batch durably.
    pub fn append(&self, batch: &[Write]) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(batch).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Every batch in the journal, oldest first. A torn last line (a crash mid-append, never
    /// acknowledged) is skipped.
    pub fn read(&self) -> std::io::Result<Vec<Vec<Write>>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut batches = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            match serde_json::from_str(&line) {
                Ok(batch) => batches.push(batch),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable journal line"),
            }
        }
        Ok(batches)
    }

    pub fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
