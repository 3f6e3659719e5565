//! Process plumbing shared by the daemons: logging, signals, systemd's notifications, the clock.

mod clock;
pub mod detach;
pub mod files;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod systemd;

pub use clock::Clock;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Logging for a process with no daemon configuration: `CDKTR_LOG`, else `info`.
pub fn init_logging() {
    logging::init_default();
}

/// Maps signals to actions: SIGTERM and SIGINT cancel `shutdown` (a second one exits at once),
/// SIGHUP calls `on_hangup` and wakes `reload`. Must run inside a tokio runtime.
pub fn handle_signals(
    shutdown: CancellationToken,
    reload: Arc<Notify>,
    on_hangup: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reload requested");
                    on_hangup();
                    reload.notify_one();
                    continue;
                }
            }
            if shutdown.is_cancelled() {
                eprintln!("second signal: exiting immediately");
                std::process::exit(130);
            }
            tracing::info!("signal received: shutting down (send again to force)");
            systemd::stopping();
            shutdown.cancel();
        }
    });
    Ok(())
}

/// Prints a process's one machine-readable ready line on stdout (`cdktr-principal ready
/// api=...`); tests and scripts wait for it.
pub fn ready_line(line: String) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs one unit of a component's work; a panic in it is logged with the component's name and
/// contained, so one bad input cannot stop a daemon. Returns None when it panicked.
pub fn contained<T>(component: &str, what: &str, work: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(v) => Some(v),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(component, what, %message, "contained a failure; the component goes on");
            None
        }
    }
}
