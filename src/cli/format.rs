//! Human formatting of times and durations, shared by the CLI and the TUI.

use chrono::{DateTime, Utc};

/// Whether people read this output: times in tables and summaries are then in the local zone
/// (standard output is a terminal), else UTC, the same for every machine a script runs on.
fn local_times() -> bool {
    static LOCAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOCAL.get_or_init(|| std::io::IsTerminal::is_terminal(&std::io::stdout()))
}

/// The date and time format of tables: `2025-01-20 09:30:00`.
pub const DATE_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// `2025-01-20 09:30:00`, in the zone [`zone`] names.
pub fn clock(t: &Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| in_zone(t, local_times(), DATE_TIME))
}

/// `t` written with `format` in the local zone (`local`) or in UTC.
pub fn in_zone(t: DateTime<Utc>, local: bool, format: &str) -> String {
    if local {
        t.with_timezone(&chrono::Local).format(format).to_string()
    } else {
        t.format(format).to_string()
    }
}

/// The zone [`clock`] writes times in: `UTC`, or the local offset (`UTC+01:00`) on a
/// terminal whose zone is not UTC.
pub fn zone() -> String {
    let offset = if local_times() {
        chrono::Local::now().offset().local_minus_utc()
    } else {
        0
    };
    if offset == 0 {
        "UTC".into()
    } else {
        let (sign, abs) = if offset < 0 {
            ('-', -offset)
        } else {
            ('+', offset)
        };
        format!("UTC{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

/// A column header naming the zone of its times: `QUEUED (UTC)`.
pub fn zoned(label: &str) -> String {
    format!("{label} ({})", zone())
}

pub fn duration(start: &Option<DateTime<Utc>>, end: &Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format_ms((*e - *s).num_milliseconds()),
        (Some(s), None) => format!("{}+", format_ms((Utc::now() - *s).num_milliseconds())),
        _ => "-".into(),
    }
}

pub fn format_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}
