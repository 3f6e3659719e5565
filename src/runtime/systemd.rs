//! systemd's notification protocol (`Type=notify`): readiness, a live status line, reloads,
//! stopping, and the watchdog. Every call is a no-op when the process was not started by
//! systemd (no `NOTIFY_SOCKET`), so the daemons call them unconditionally.

use std::time::Duration;

use sd_notify::NotifyState;

/// Whether the process was started by systemd with a notification socket.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

fn send(states: &[NotifyState<'_>]) {
    if enabled() {
        if let Err(e) = sd_notify::notify(states) {
            tracing::debug!(error = %e, "sd_notify failed");
        }
    }
}

/// `READY=1`: the daemon serves (and the process that started it with `--daemon` returns).
pub fn ready() {
    send(&[NotifyState::Ready]);
    super::detach::ready();
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// `STATUS=...`: one short line `systemctl status` shows.
pub fn status(line: &str) {
    send(&[NotifyState::Status(line)]);
}

/// `RELOADING=1` with the monotonic time (systemd 253's `Type=notify-reload` needs it; older
/// ones ignore it); [`reloaded`] ends the reload.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `READY=1` after a reload, with the status line.
pub fn reloaded(line: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(line)]);
}

/// `WATCHDOG=1`: everything the watchdog checks made progress.
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}

/// How often systemd expects a watchdog ping (`WatchdogSec=`), when it expects any.
pub fn watchdog_interval() -> Option<Duration> {
    if !enabled() {
        return None;
    }
    sd_notify::watchdog_enabled()
}
