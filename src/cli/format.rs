//! Human formatting of times and durations, shared by the CLI and the TUI.

use chrono::{DateTime, Utc};

pub fn clock(t: &Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
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
