//! The keys file: who may connect and as what. One client per line, `NAME ROLE PUBLIC-KEY`
//! (Z85), `#` comments and blank lines allowed. The principal re-reads it whenever it changes,
//! so adding or removing a line takes effect at the next request, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use super::AuthError;
use crate::model::Role;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub name: String,
    pub role: Role,
    pub public: String,
}

/// The parsed keys file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    pub entries: Vec<KeyEntry>,
}

impl Keys {
    pub fn parse(path: &Path, text: &str) -> Result<Keys, AuthError> {
        let mut entries: Vec<KeyEntry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let error = |message: String| AuthError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, role, public] = fields[..] else {
                return Err(error(format!(
                    "expected `NAME ROLE PUBLIC-KEY`, found {} fields",
                    fields.len()
                )));
            };
            let role: Role = role.parse().map_err(|e| error(format!("{e}")))?;
            if public.len() != 40 || zmq::z85_decode(public).is_err() {
                return Err(error(format!(
                    "`{public}` is not a CURVE public key (40 characters of Z85)"
                )));
            }
            if let Some(other) = entries
                .iter()
                .find(|e| e.name == name || e.public == public)
            {
                return Err(error(format!(
                    "`{name}` repeats the name or key of `{}`",
                    other.name
                )));
            }
            entries.push(KeyEntry {
                name: name.to_owned(),
                role,
                public: public.to_owned(),
            });
        }
        Ok(Keys { entries })
    }

    pub fn by_public(&self, public: &str) -> Option<&KeyEntry> {
        self.entries.iter().find(|e| e.public == public)
    }

    pub fn by_name(&self, name: &str) -> Option<&KeyEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// When and how large the file was at its last read.
type Stamp = Option<(SystemTime, u64)>;

/// Two readings of the keys file that differ: before and after.
pub type KeysChange = (Arc<Keys>, Arc<Keys>);

/// A keys file and its last good contents, re-read when the file changes.
pub struct KeysFile {
    path: PathBuf,
    cache: Mutex<(Stamp, Arc<Keys>)>,
    changes: OnceLock<tokio::sync::mpsc::UnboundedSender<KeysChange>>,
}

impl KeysFile {
    pub fn new(path: &Path) -> KeysFile {
        KeysFile {
            path: path.to_path_buf(),
            cache: Mutex::new((None, Arc::new(Keys::default()))),
            changes: OnceLock::new(),
        }
    }

    /// From now on, each re-read that changes the keys is also sent to the returned receiver
    /// (for the audit log). None when someone already watches.
    pub fn watch_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<KeysChange>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.changes.set(tx).ok().map(|_| rx)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys as the file says now. A file that cannot be read or parsed keeps the last good
    /// keys (and says why in the log), so a typo never locks every client out.
    pub fn current(&self) -> Arc<Keys> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp.is_some() && stamp == cache.0 {
            return cache.1.clone();
        }
        match self.read() {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), clients = keys.entries.len(), "keys loaded");
                let keys = Arc::new(keys);
                if let Some(changes) = self.changes.get() {
                    if cache.0.is_some() && *cache.1 != *keys {
                        let _ = changes.send((cache.1.clone(), keys.clone()));
                    }
                }
                *cache = (stamp, keys);
            }
            Err(e) => {
                tracing::error!(error = %e, "keys file unreadable; keeping the keys loaded before");
                cache.0 = stamp;
            }
        }
        cache.1.clone()
    }

    pub fn read(&self) -> Result<Keys, AuthError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| AuthError::Io {
            path: self.path.clone(),
            source,
        })?;
        Keys::parse(&self.path, &text)
    }

    /// Adds a client (creating the file 0600 if needed); refuses a name already present.
    pub fn add(&self, entry: &KeyEntry) -> Result<(), AuthError> {
        let mut text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                "# cdktr keys: NAME ROLE PUBLIC-KEY, one client per line\n".to_owned()
            }
            Err(source) => {
                return Err(AuthError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let keys = Keys::parse(&self.path, &text)?;
        if keys.by_name(&entry.name).is_some() {
            return Err(AuthError::Parse {
                path: self.path.clone(),
                line: 0,
                message: format!(
                    "a client named `{}` exists already (revoke it first)",
                    entry.name
                ),
            });
        }
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("{} {} {}\n", entry.name, entry.role, entry.public));
        self.replace(&text)
    }

    /// Removes the client `name`; false when there was none.
    pub fn revoke(&self, name: &str) -> Result<bool, AuthError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| AuthError::Io {
            path: self.path.clone(),
            source,
        })?;
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.split_whitespace().next() != Some(name) || l.trim_start().starts_with('#')
            })
            .collect();
        if kept.len() == text.lines().count() {
            return Ok(false);
        }
        self.replace(&(kept.join("\n") + "\n"))?;
        Ok(true)
    }

    /// Writes the whole file atomically (a new file renamed over the old one).
    fn replace(&self, text: &str) -> Result<(), AuthError> {
        let io = |source| AuthError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        let mut file = crate::runtime::files::private_file()
            .create_new(true)
            .write(true)
            .open(&tmp)
            .map_err(io)?;
        use std::io::Write;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        super::super::KeyPair::generate().unwrap().public
    }

    #[test]
    fn lines_name_a_role_and_a_key_and_errors_say_where() {
        let k = key();
        let keys = Keys::parse(Path::new("k"), &format!("# c\n\nweb1 agent {k}\n")).unwrap();
        assert_eq!(keys.by_public(&k).unwrap().role, Role::Agent);
        for (text, expected) in [
            (
                "web1 agent\n".to_owned(),
                "k:1: expected `NAME ROLE PUBLIC-KEY`",
            ),
            (format!("web1 boss {k}\n"), "k:1: `boss` is not a role"),
            ("web1 agent short\n".to_owned(), "is not a CURVE public key"),
            (
                format!("a agent {k}\na viewer {}\n", key()),
                "k:2: `a` repeats",
            ),
        ] {
            let err = Keys::parse(Path::new("k"), &text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn add_revoke_and_reload_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeysFile::new(&dir.path().join("keys"));
        let entry = KeyEntry {
            name: "ops".into(),
            role: Role::Operator,
            public: key(),
        };
        file.add(&entry).unwrap();
        assert!(file.add(&entry).is_err(), "a name is added once");
        assert_eq!(file.current().by_name("ops"), Some(&entry));
        assert!(file.revoke("ops").unwrap());
        assert!(!file.revoke("ops").unwrap());
        assert!(file.current().by_name("ops").is_none(), "revoked at once");
        // A broken edit keeps the last good keys.
        file.add(&entry).unwrap();
        assert!(file.current().by_name("ops").is_some());
        std::fs::write(dir.path().join("keys"), "garbage line here too many\n").unwrap();
        assert!(file.current().by_name("ops").is_some());
    }
}
