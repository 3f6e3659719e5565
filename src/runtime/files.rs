//! Files the daemons create hold run output, parameters and history: only their owner may
//! read them. Daemons run with umask 077; directories are created 0700, files 0600, and a file
//! is never created through a symlink someone left in its place.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Makes every file and directory the process creates from now on private to its owner.
pub fn restrict_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory is left as it is.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
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
    fn private_files_and_dirs_are_owner_only_and_never_follow_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
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
