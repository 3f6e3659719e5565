//! Key material in files: the principal's key pair, and a client's credential (its key pair
//! and the principal's public key). Both are small TOML files written 0600. Keys are Z85
//! text, as ZeroMQ tools (pyzmq's `zmq.curve_keypair`, `curve_keygen`) print them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::model::Role;

/// A CURVE key pair, Z85-encoded (40 characters each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    pub public: String,
    pub secret: String,
}

impl KeyPair {
    pub fn generate() -> Result<KeyPair, AuthError> {
        let pair = zmq::CurveKeyPair::new()?;
        Ok(KeyPair {
            public: zmq::z85_encode(&pair.public_key)?,
            secret: zmq::z85_encode(&pair.secret_key)?,
        })
    }
}

/// The principal's key pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalKey {
    #[serde(flatten)]
    pub pair: KeyPair,
}

impl PrincipalKey {
    /// Reads the key at `path`, creating it (0600) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<PrincipalKey, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = PrincipalKey {
                    pair: KeyPair::generate()?,
                };
                write_private(path, &key, "cdktr principal key: keep it secret")?;
                tracing::info!(path = %path.display(), "created the principal's key pair");
                Ok(key)
            }
            Err(source) => Err(AuthError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// What a client needs to connect: its name and role (for people reading the file), its key
/// pair, and the principal's public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub name: String,
    pub role: Role,
    #[serde(flatten)]
    pub pair: KeyPair,
    /// The principal's public key: a server without the matching secret is refused.
    pub principal: String,
}

impl Credential {
    /// The credential at `path`, or None when no path is configured (an empty path).
    pub fn optional(path: &Path) -> Result<Option<Credential>, AuthError> {
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        Credential::load(path).map(Some)
    }

    pub fn load(path: &Path) -> Result<Credential, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse(path, &text)
    }

    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        write_private(
            path,
            self,
            &format!(
                "cdktr credential `{}` ({}): keep it secret",
                self.name, self.role
            ),
        )
    }

    /// Sets this credential on a client socket (before it connects).
    pub fn apply(&self, socket: &zmq::Socket) -> zmq::Result<()> {
        socket.set_curve_serverkey(self.principal.as_bytes())?;
        socket.set_curve_publickey(self.pair.public.as_bytes())?;
        socket.set_curve_secretkey(self.pair.secret.as_bytes())
    }
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, AuthError> {
    toml::from_str(text).map_err(|e| AuthError::Parse {
        path: path.to_path_buf(),
        line: e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .unwrap_or(1),
        message: e.message().to_owned(),
    })
}

/// Writes `value` as TOML to a new file only its owner can read.
fn write_private(path: &Path, value: &impl Serialize, title: &str) -> Result<(), AuthError> {
    let io = |source| AuthError::Io {
        path: PathBuf::from(path),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::runtime::files::private_dir(dir).map_err(io)?;
    }
    let body = toml::to_string(value).map_err(|e| io(std::io::Error::other(e)))?;
    let mut file = crate::runtime::files::private_file()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    use std::io::Write;
    file.write_all(format!("# {title}\n{body}").as_bytes())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let principal = PrincipalKey::load_or_create(&dir.path().join("p.key")).unwrap();
        assert_eq!(principal.pair.public.len(), 40);
        assert_eq!(
            PrincipalKey::load_or_create(&dir.path().join("p.key")).unwrap(),
            principal,
            "created once, then read"
        );
        let credential = Credential {
            name: "web1".into(),
            role: Role::Agent,
            pair: KeyPair::generate().unwrap(),
            principal: principal.pair.public.clone(),
        };
        let path = dir.path().join("web1.cred");
        credential.save(&path).unwrap();
        assert_eq!(Credential::load(&path).unwrap(), credential);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(credential.save(&path).is_err(), "never overwrites");
        std::fs::write(&path, "name = \"x\"\nrole = \"boss\"\n").unwrap();
        let err = Credential::load(&path).unwrap_err().to_string();
        assert!(err.contains("web1.cred:2") && err.contains("role"), "{err}");
    }
}
