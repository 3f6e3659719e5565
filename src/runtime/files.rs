//! Files the daemons create hold run output, parameters and history: only their owner may
//! read them. Directories are created 0700 (an existing one loses its bits for others), files
//! 0600, and a file is never created through a symlink someone left in its place. The principal
//! also runs with umask 077, so what libraries create on their own (DuckDB's write-ahead log and
//! spill files, libzmq's socket files) is private too; tasks of its embedded agent get back the
//! umask it was started with, so the files they write keep the modes they always had. The agent
//! daemon keeps its umask (everything it creates has an explicit mode): its tasks inherit it
//! and are started without a `pre_exec` hook, so through `posix_spawn` rather than a fork of the
//! daemon (about 4 ms less from trigger to task start with the principal's address space).

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// The umask the process was started with, once [`private_umask`] replaced it.
static STARTED_WITH: std::sync::OnceLock<nix::sys::stat::Mode> = std::sync::OnceLock::new();

/// Sets the process umask to 077 (once; the daemons call it first thing).
pub fn private_umask() {
    STARTED_WITH
        .get_or_init(|| nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077)));
}

/// The umask tasks should run with: the one the daemon started with (None when the daemon did
/// not change it).
pub fn task_umask() -> Option<nix::sys::stat::Mode> {
    STARTED_WITH.get().copied()
}

/// Creates `dir` (and missing parents) with mode 0700. An existing directory keeps its owner
/// and group bits (0750 for a shared group is fine) but loses those for others.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if without_bits(dir, 0o007)? {
        tracing::info!(dir = %dir.display(), "directory made private: others lost their access");
    }
    Ok(())
}

/// Removes `bits` from the mode of `path` if it has any of them; true when it changed it.
pub fn without_bits(path: &Path, bits: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & bits == 0 {
        return Ok(false);
    }
    let private = (mode & 0o7777) & !bits;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
    Ok(true)
}

/// An exclusive lock on a data directory, held for the life of the process (the lock goes with
/// the process, however it ends).
#[derive(Debug)]
pub struct DirLock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

/// Locks `dir/principal.lock` (creating `dir`), or says which process holds it.
pub fn lock_data_dir(dir: &Path) -> Result<DirLock, String> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("principal.lock");
    let fail = |e: &dyn std::fmt::Display| format!("cannot lock {}: {e}", path.display());
    private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| fail(&e))?;
    let mut locked =
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("pid {holder}")
                };
                return Err(format!(
                    "another principal ({holder}) already uses the data directory {} (it holds \
                     {}): stop it first, or give this one another principal.data_dir",
                    dir.display(),
                    path.display()
                ));
            }
            Err((_, e)) => return Err(fail(&e)),
        };
    locked.set_len(0).map_err(|e| fail(&e))?;
    locked.rewind().map_err(|e| fail(&e))?;
    writeln!(locked, "{}", std::process::id()).map_err(|e| fail(&e))?;
    Ok(DirLock { _file: locked })
}

/// The user (and group) the package runs the daemons as.
pub const SERVICE_USER: &str = "cdktr";

/// Whether `path` is a unix socket this process may trust to be a principal's: owned by this
/// user, by root or by the `cdktr` service user, in a directory others cannot write to.
/// Anything else (a symlink, another user's socket, a world-writable directory such as /tmp)
/// could be a planted impostor, so clients and agents never pick it on their own.
pub fn trusted_socket(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    let owner = meta.uid();
    let trusted_owner = owner == 0
        || owner == nix::unistd::getuid().as_raw()
        || nix::unistd::User::from_uid(owner.into())
            .ok()
            .flatten()
            .is_some_and(|u| u.name == SERVICE_USER);
    let parent_closed = path
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.mode() & 0o002 == 0);
    meta.file_type().is_socket() && trusted_owner && parent_closed
}

/// Open options for a private file: mode 0600 when created, and a symlink in its place is
/// refused (`O_NOFOLLOW`) rather than followed.
pub fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(nix::libc::O_NOFOLLOW);
    options
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn only_a_socket_a_principal_could_have_made_is_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let closed = tmp.path().join("closed");
        private_dir(&closed).unwrap();
        let socket = closed.join("control.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(trusted_socket(&socket), "ours, in a private directory");
        // The same socket reached through a symlink, or in a directory anyone may write to.
        let link = closed.join("link.sock");
        std::os::unix::fs::symlink(&socket, &link).unwrap();
        assert!(!trusted_socket(&link));
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let planted = open.join("control.sock");
        let _other = std::os::unix::net::UnixListener::bind(&planted).unwrap();
        assert!(!trusted_socket(&planted));
        // Not a socket at all.
        let file = closed.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(!trusted_socket(&file));
    }

    #[test]
    fn private_files_and_dirs_are_owner_only_and_never_follow_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();
        private_dir(&shared).unwrap();
        assert_eq!(
            mode(&shared),
            0o770,
            "the group keeps its bits, others lose theirs"
        );
        let file = dir.join("f");
        private_file()
            .create(true)
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(mode(&file), 0o600);
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(private_file()
            .create(true)
            .append(true)
            .open(&link)
            .is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
