//! Process plumbing shared by the daemons: logging, signals, systemd readiness, the clock.

mod clock;
pub mod files;
pub mod memory;

pub use clock::Clock;

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Daemon logs go to stderr, without colour when stderr is not a terminal. The filter comes
/// from `CDKTR_LOG` (or `RUST_LOG`), default `info`.
pub fn init_logging() {
    let filter = std::env::var("CDKTR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}

/// Maps signals to actions: SIGTERM and SIGINT cancel `shutdown` (a second one exits at once),
/// SIGHUP wakes `reload`. Must run inside a tokio runtime.
pub fn handle_signals(shutdown: CancellationToken, reload: Arc<Notify>) -> std::io::Result<()> {
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
                    reload.notify_one();
                    continue;
                }
            }
            if shutdown.is_cancelled() {
                eprintln!("second signal: exiting immediately");
                std::process::exit(130);
            }
            tracing::info!("signal received: shutting down (send again to force)");
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

/// Tells systemd (Type=notify) the daemon is ready, when started by it.
pub fn notify_ready() {
    if std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()) {
        if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            tracing::warn!(error = %e, "sd_notify READY failed");
        }
    }
}

/// Tells systemd the daemon is stopping.
pub fn notify_stopping() {
    if std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()) {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
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
