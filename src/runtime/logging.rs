//! The daemons' own log: one line per event (level, component, message, fields) on stderr or a
//! log file, colour only on a terminal, and a syslog priority prefix for journald, which then
//! files each line under its level (`journalctl -p warning`). The filter (`log.level`,
//! `CDKTR_LOG`) and the log file are taken again on SIGHUP, so logrotate can move the file away.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

type FilterHandle = reload::Handle<EnvFilter, Registry>;

static FILTER: OnceLock<FilterHandle> = OnceLock::new();
static LOG_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Sets up the log with `level` (a tracing filter). With `file`, stdout and stderr are both
/// pointed at it (appending), so the ready line and anything printed land there too.
pub fn init(level: &str, file: Option<&Path>) -> std::io::Result<()> {
    if let Some(path) = file {
        redirect_output(path)?;
        let _ = LOG_FILE.set(path.to_path_buf());
    }
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let journald = to_journald();
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!journald && std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(CountEvents);
    // The journal stamps every line itself; anywhere else each line carries its own time.
    let _ = if journald {
        let format = Journald(Format::default().with_ansi(false).without_time());
        registry.with(base.event_format(format)).try_init()
    } else {
        registry.with(base).try_init()
    };
    let _ = FILTER.set(handle);
    Ok(())
}

/// Logging for short-lived tools and tests that have no configuration yet: `CDKTR_LOG`, else
/// `info`.
pub fn init_default() {
    let level = std::env::var("CDKTR_LOG").unwrap_or_else(|_| "info".into());
    let _ = init(&level, None);
}

/// Applies a new filter (SIGHUP); a no-op before [`init`].
pub fn set_level(level: &str) {
    let Some(handle) = FILTER.get() else { return };
    match EnvFilter::try_new(level) {
        Ok(filter) => match handle.reload(filter) {
            Ok(()) => tracing::info!(level, "log level set"),
            Err(e) => tracing::warn!(error = %e, "cannot change the log level"),
        },
        Err(e) => tracing::warn!(level, error = %e, "not a log filter; the level is unchanged"),
    }
}

/// Opens the log file again (after logrotate moved it) and points stdout and stderr at it.
pub fn reopen() {
    let Some(path) = LOG_FILE.get() else { return };
    match redirect_output(path) {
        Ok(()) => tracing::info!(file = %path.display(), "log file reopened"),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot reopen the log file; logging on to the old one")
        }
    }
}

/// Appends stdout and stderr to `path` (created 0640).
fn redirect_output(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("log file {}: {e}", path.display())))?;
    nix::unistd::dup2_stdout(&file)?;
    nix::unistd::dup2_stderr(&file)?;
    Ok(())
}

/// Whether stderr is the journal's stream (systemd sets `JOURNAL_STREAM=DEV:INODE` of it).
fn to_journald() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let stderr = std::io::stderr();
    let fd = stderr.as_raw_fd();
    let Ok(meta) = std::fs::metadata(format!("/proc/self/fd/{fd}")) else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// syslog's priority for a level (`<3>` error ... `<7>` debug), which journald reads off the
/// start of a line.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The default line, without its time, behind a syslog priority prefix.
struct Journald(Format<Full, ()>);

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Warnings and errors kept for `recent_warnings` (the log file has them all).
const KEPT_NOTICES: usize = 200;

/// The newest warnings and errors, and how many were logged.
static NOTICES: Mutex<(u64, VecDeque<Notice>)> = Mutex::new((0, VecDeque::new()));

use crate::protocol::views::Notice;

/// How many warnings and errors this process has logged.
pub fn warnings_logged() -> u64 {
    NOTICES.lock().unwrap_or_else(|p| p.into_inner()).0
}

/// The kept warnings and errors after the cursor `after`, oldest first.
pub fn recent_warnings(after: Option<u64>) -> Vec<Notice> {
    let notices = NOTICES.lock().unwrap_or_else(|p| p.into_inner());
    notices
        .1
        .iter()
        .filter(|n| after.is_none_or(|a| n.seq > a))
        .cloned()
        .collect()
}

/// An event's message and fields as one line: `message key=value ...`.
#[derive(Default)]
struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let sep = if self.0.is_empty() { "" } else { " " };
        let _ = if field.name() == "message" {
            write!(self.0, "{sep}{value:?}")
        } else {
            write!(self.0, "{sep}{}={value:?}", field.name())
        };
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            let sep = if self.0.is_empty() { "" } else { " " };
            self.0.push_str(sep);
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// Counts the warnings and errors logged (`cdktr_log_events_total{level}`) and keeps the
/// newest (`recent_warnings`).
struct CountEvents;

impl<S: Subscriber> tracing_subscriber::Layer<S> for CountEvents {
    fn on_event(&self, event: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => return,
        };
        super::metrics::METRICS
            .log_events
            .get_or_create(&vec![("level", level.to_owned())])
            .inc();
        let mut text = Text::default();
        event.record(&mut text);
        let mut notices = NOTICES.lock().unwrap_or_else(|p| p.into_inner());
        notices.0 += 1;
        let notice = Notice {
            seq: notices.0,
            at: chrono::Utc::now(),
            level: level.to_owned(),
            target: event.metadata().target().to_owned(),
            message: text.0,
        };
        if notices.1.len() >= KEPT_NOTICES {
            notices.1.pop_front();
        }
        notices.1.push_back(notice);
    }
}
