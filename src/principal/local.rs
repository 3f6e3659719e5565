//! The local control socket: a unix socket (libzmq `ipc://`) next to the TCP API, serving
//! every request, and a second one for the live log stream. Being able to open it is the
//! credential: it is mode 0660 when it belongs to `principal.control_group` (`cdktr`), else
//! 0600, so the file system decides who is an operator on this host, and local agents
//! register through it with no key.
//!
//! libzmq creates the socket file with the process umask, so the file is bound inside a fresh
//! private staging directory (mkdtemp), given its group and mode there, and only then renamed
//! into place: nobody can connect while its permissions are still open.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::PrincipalError;
use crate::transport::socket::context;

/// A unix socket path must fit `sun_path` (108 bytes with its terminator).
const MAX_PATH: usize = 107;

/// The live log stream's socket beside the control socket at `path`.
pub fn stream_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".logs");
    PathBuf::from(name)
}

/// The bound local sockets; their files are removed when this is dropped.
pub struct LocalSockets {
    pub api: zmq::Socket,
    pub publish: zmq::Socket,
    pub api_endpoint: String,
    pub publish_endpoint: String,
    /// Hold it while serving: dropping it removes the socket files.
    pub files: SocketFiles,
}

/// The socket files this principal made.
pub struct SocketFiles {
    _files: Vec<Bound>,
}

/// A socket file this process made (removed on drop while it is still that file).
struct Bound {
    path: PathBuf,
    inode: (u64, u64),
}

impl Drop for Bound {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a unix socket can be bound at `path` (and at its stream's path): `sun_path` holds
/// 107 bytes.
pub fn fits(path: &Path) -> bool {
    stream_path(path).as_os_str().len() <= MAX_PATH
}

/// Binds the control socket at `path` and its stream beside it, each configured by its
/// `options` before binding, and gives both to `group` (mode 0660) when it can.
pub fn bind(
    path: &Path,
    group: &str,
    api_options: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
    publish_options: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
) -> Result<LocalSockets, PrincipalError> {
    let group = lookup_group(group);
    let (api, api_file) = bind_one(path, group, zmq::ROUTER, api_options)?;
    let publish_path = stream_path(path);
    let (publish, publish_file) = bind_one(&publish_path, group, zmq::PUB, publish_options)?;
    Ok(LocalSockets {
        api,
        publish,
        api_endpoint: endpoint(path),
        publish_endpoint: endpoint(&publish_path),
        files: SocketFiles {
            _files: vec![api_file, publish_file],
        },
    })
}

/// The libzmq endpoint of a unix socket path.
pub fn endpoint(path: &Path) -> String {
    format!("ipc://{}", path.display())
}

fn bind_one(
    path: &Path,
    group: Option<nix::unistd::Gid>,
    kind: zmq::SocketType,
    options: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
) -> Result<(zmq::Socket, Bound), PrincipalError> {
    let fail = |why: String| PrincipalError::Local {
        path: path.to_owned(),
        why,
    };
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(fail(format!(
            "the path is {len} bytes, more than a unix socket allows ({MAX_PATH}): set \
             principal.control_socket to a shorter path"
        )));
    }
    clear_stale(path).map_err(fail)?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.exists() {
        crate::runtime::files::private_dir(parent)
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    }
    // mkdtemp: a new directory, 0700, that nobody could have prepared in advance.
    let staging = nix::unistd::mkdtemp(&parent.join(".cdktr-bind-XXXXXX")).map_err(|e| {
        fail(format!(
            "cannot create a staging directory in {}: {e}",
            parent.display()
        ))
    })?;
    let staged = staging.join("s");
    let result = (|| {
        let socket = context().socket(kind).map_err(|e| e.to_string())?;
        options(&socket).map_err(|e| e.to_string())?;
        socket
            .bind(&endpoint(&staged))
            .map_err(|e| format!("cannot bind: {e}"))?;
        let mode = if share_with_group(&staged, group) {
            0o660
        } else {
            0o600
        };
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set its mode: {e}"))?;
        std::fs::rename(&staged, path).map_err(|e| format!("cannot move it into place: {e}"))?;
        let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        Ok((
            socket,
            Bound {
                path: path.to_owned(),
                inode: (meta.dev(), meta.ino()),
            },
        ))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result.map_err(fail)
}

/// Removes a socket file left by a principal that is gone; refuses when one still answers
/// on it or when the path is something else.
fn clear_stale(path: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err("the path exists and is not a socket; remove it or choose another".into());
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(
            "another principal is serving it (stop that one first, or give this one another \
             data_dir or principal.control_socket)"
                .into(),
        ),
        // Only a refused connection means nobody listens: anything else (no permission, a
        // full backlog) may be a live principal, whose socket must not be removed.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the stale socket file: {e}")),
        Err(e) => Err(format!(
            "cannot tell whether another principal serves it ({e}); remove it if none does"
        )),
    }
}

/// The id of the socket's group, looked up once for both sockets (and said once when there
/// is no such group).
fn lookup_group(group: &str) -> Option<nix::unistd::Gid> {
    match nix::unistd::Group::from_name(group) {
        Ok(Some(entry)) => Some(entry.gid),
        _ => {
            tracing::info!(
                group,
                "no such group: the control socket is for the principal's user only (0600)"
            );
            None
        }
    }
}

/// Gives the socket to `group`; true when it belongs to that group afterwards. Without the
/// group (or the right to use it) the socket stays the principal's user's alone.
fn share_with_group(path: &Path, group: Option<nix::unistd::Gid>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(gid) = group else {
        return false;
    };
    if let Err(e) = nix::unistd::chown(path, None, Some(gid)) {
        tracing::warn!(error = %e, %gid, "cannot give the control socket to its group: it is for the principal's user only (0600)");
    }
    std::fs::metadata(path).is_ok_and(|m| m.gid() == gid.as_raw())
}

/// The local user a peer of the control socket runs as, from libzmq's `Peer-Address` of an
/// `ipc://` connection (`…:UID:GID:PID`, read by the kernel's `SO_PEERCRED`).
/// Names are looked up once per uid (a lookup may ask NSS, which can be slow).
pub fn peer_user(peer: Option<&str>) -> String {
    static NAMES: std::sync::Mutex<BTreeMap<u32, String>> = std::sync::Mutex::new(BTreeMap::new());
    let uid = peer
        .and_then(|p| p.rsplit(':').nth(2))
        .and_then(|u| u.parse::<u32>().ok());
    let Some(uid) = uid else {
        return "unknown".into();
    };
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if names.len() > 10_000 {
        names.clear();
    }
    names
        .entry(uid)
        .or_insert_with(|| match nix::unistd::User::from_uid(uid.into()) {
            Ok(Some(user)) => user.name,
            _ => format!("uid {uid}"),
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_address_names_the_local_user() {
        assert_eq!(peer_user(Some("localhost:0:0:3833")), "root");
        assert_eq!(peer_user(Some(":4000000:1:2")), "uid 4000000");
        assert_eq!(peer_user(Some("garbage")), "unknown");
        assert_eq!(peer_user(None), "unknown");
    }

    #[test]
    fn only_a_dead_socket_file_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("regular");
        std::fs::write(&file, "keep me").unwrap();
        assert!(clear_stale(&file).unwrap_err().contains("not a socket"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

        let live = tmp.path().join("live.sock");
        let listener = std::os::unix::net::UnixListener::bind(&live).unwrap();
        assert!(clear_stale(&live)
            .unwrap_err()
            .contains("another principal"));
        drop(listener);
        clear_stale(&live).unwrap();
        assert!(!live.exists());

        let long = tmp.path().join("x".repeat(120));
        let refused = bind_one(&long, None, zmq::ROUTER, |_| Ok(()))
            .err()
            .unwrap();
        assert!(refused.to_string().contains("shorter path"), "{refused}");
    }
}
