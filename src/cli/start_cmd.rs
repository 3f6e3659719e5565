//! `cdktr start principal|agent`: replaces this process with the daemon's own binary, found
//! next to `cdktr` (else on PATH). The CLI does not link the daemons: the principal carries
//! DuckDB, and a CLI without it starts in a millisecond instead of ten.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs `binary` with `--config` (when given) and `flags`; returns only if it cannot be run.
pub fn exec(binary: &str, config: Option<&Path>, flags: &[OsString]) -> anyhow::Result<ExitCode> {
    let program = sibling(binary).unwrap_or_else(|| PathBuf::from(binary));
    let mut command = std::process::Command::new(&program);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command.args(flags);
    let error = command.exec();
    Err(anyhow::anyhow!(
        "cannot run {} ({error}): `cdktr start` runs the daemon's own binary; install it next \
         to cdktr or on PATH, or run it directly",
        program.display()
    ))
}

/// `binary` in the directory of the running `cdktr`, when it is there.
fn sibling(binary: &str) -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.with_file_name(binary);
    path.is_file().then_some(path)
}

/// Runs this same command line in `cdktr-principal`, which carries DuckDB, for the commands
/// that open a database file themselves (`query --offline`, `gc --compact`); returns only if
/// it cannot be run.
pub fn exec_with_store() -> anyhow::Result<ExitCode> {
    let mut flags: Vec<OsString> = vec![super::OFFLINE.into()];
    flags.extend(std::env::args_os().skip(1));
    exec("cdktr-principal", None, &flags)
}
