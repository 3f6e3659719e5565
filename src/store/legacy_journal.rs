//! The journal of earlier versions, written only while DuckDB refused writes: a header line
//! with the journal's unique id, then one JSON line per batch. A principal that crashed in that
//! state left one behind: it is replayed at the next start (unless the id recorded in DuckDB
//! shows it was applied), then removed. Today's journal (`journal.rs`) has no header line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::Write;

pub struct Journal {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    journal_id: String,
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

    /// Appends one batch durably (tests write the old format with it) (a new file starts with a header holding a fresh id). A
    /// failed append is cut off again, so the file never holds half a line.
    #[cfg(test)]
    pub fn append(&self, batch: &[Write]) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut bytes = Vec::new();
        let mut file = crate::runtime::files::private_file()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let length = file.metadata()?.len();
        if length == 0 {
            let header = Header {
                journal_id: ulid::Ulid::new().to_string(),
            };
            serde_json::to_writer(&mut bytes, &header).map_err(std::io::Error::other)?;
            bytes.push(b'\n');
        }
        serde_json::to_writer(&mut bytes, batch).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let written = file.write_all(&bytes).and_then(|()| file.sync_data());
        if written.is_err() {
            let _ = file.set_len(length);
        }
        written
    }

    /// The journal's id and every batch in it, oldest first; None when there is no journal.
    /// An unreadable batch line (never acknowledged) is skipped.
    pub fn read(&self) -> std::io::Result<Option<(String, Vec<Vec<Write>>)>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut lines = BufReader::new(file).lines();
        let Some(first) = lines.next().transpose()? else {
            return Ok(None);
        };
        let id = serde_json::from_str::<Header>(&first)
            .map(|h| h.journal_id)
            .map_err(|e| std::io::Error::other(format!("journal header unreadable: {e}")))?;
        let mut batches = Vec::new();
        for line in lines {
            let line = line?;
            match serde_json::from_str(&line) {
                Ok(batch) => batches.push(batch),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable journal line"),
            }
        }
        Ok(Some((id, batches)))
    }

    pub fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
