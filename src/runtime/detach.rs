//! `--daemon` without systemd: the classic double fork (the `daemonix` crate), with a pipe back
//! to the starting process so that it returns only once the daemon is ready, and fails with
//! the daemon's own error when it could not start (a held pid file, a bad endpoint, a locked
//! data directory).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The write end of the pipe, in the daemon, until it is ready.
static READY: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// What [`detach`] leaves to its caller.
pub enum Detached {
    /// This is the daemon: go on starting.
    Daemon,
    /// This is the process that was started: exit with this code.
    Exit(u8),
}

/// Forks into the background. The starting process waits for the daemon's readiness (or its
/// failure) and is told to exit; the daemon goes on. Must run before any thread is started.
pub fn detach(name: &str, pid_file: Option<&Path>, log_file: &Path) -> Detached {
    let (read, write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot detach: {e}");
            return Detached::Exit(1);
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    // Keep the umask the daemon was given (tasks inherit it).
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(mask);
    let mut daemon = daemonix::Daemonize::new()
        .working_directory(cwd)
        .umask(mask.bits());
    if let Some(p) = pid_file {
        daemon = daemon.pid_file(p);
    }
    match daemon.execute() {
        daemonix::Outcome::Parent(Ok(_)) => {
            drop(write);
            wait_ready(name, read, log_file)
        }
        daemonix::Outcome::Parent(Err(e)) => {
            eprintln!("error: cannot detach: {e}");
            Detached::Exit(1)
        }
        daemonix::Outcome::Child(result) => {
            drop(read);
            let mut pipe = std::fs::File::from(write);
            if let Err(e) = result {
                let what = match pid_file {
                    Some(p) => format!("pid file {}: {e}", p.display()),
                    None => e.to_string(),
                };
                let _ = write!(pipe, "E cannot start in the background ({what})");
                std::process::exit(1);
            }
            if let Ok(mut slot) = READY.lock() {
                *slot = Some(pipe);
            }
            Detached::Daemon
        }
    }
}

/// In the daemon: tells the starting process it is ready (once; a no-op when not detached).
pub fn ready() {
    let pipe = READY.lock().ok().and_then(|mut p| p.take());
    if let Some(mut pipe) = pipe {
        let _ = write!(pipe, "R {}", std::process::id());
    }
}

/// In the daemon: tells the starting process why it could not start (when detached).
pub fn failed(message: &str) {
    let pipe = READY.lock().ok().and_then(|mut p| p.take());
    if let Some(mut pipe) = pipe {
        let _ = write!(pipe, "E {message}");
    }
}

fn wait_ready(name: &str, read: OwnedFd, log_file: &Path) -> Detached {
    let mut text = String::new();
    let _ = std::fs::File::from(read).read_to_string(&mut text);
    if let Some(pid) = text.strip_prefix("R ") {
        eprintln!("{name} runs in the background (pid {pid})");
        return Detached::Exit(0);
    }
    match text.strip_prefix("E ") {
        Some(message) => eprintln!("error: {message}"),
        None => eprintln!(
            "error: {name} exited before it was ready; its log is {}",
            log_file.display()
        ),
    }
    Detached::Exit(1)
}
