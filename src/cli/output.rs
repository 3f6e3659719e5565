//! Human output helpers: aligned tables and timestamps. `--json` output is serde's.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

/// A table whose columns are as wide as their widest cell.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    /// The column of states (run, task, agent) coloured on a terminal.
    states: Option<usize>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table::with_headers(headers.iter().map(|h| (*h).to_owned()).collect())
    }

    pub fn with_headers(headers: Vec<String>) -> Self {
        Table {
            headers: headers.into_iter().map(visible).collect(),
            rows: Vec::new(),
            states: None,
        }
    }

    /// Colours the states in column `index` when standard output is a terminal and NO_COLOR
    /// is not set: ended well green, failed red, stopped yellow, running cyan.
    pub fn colour_states(mut self, index: usize) -> Self {
        self.states = colour().then_some(index);
        self
    }

    /// Adds a row. Control characters in cells are escaped (`\n`, `\u{1b}`), so a value that
    /// came from someone else (a workflow name in the audit log) cannot forge rows or drive
    /// the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(visible).collect());
    }

    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                let padded = if i == last {
                    (*cell).to_owned()
                } else {
                    format!("{cell:<w$}  ")
                };
                match (self.states == Some(i), state_colour(cell)) {
                    (true, Some(code)) => s.push_str(&format!("\x1b[{code}m{padded}\x1b[0m")),
                    _ => s.push_str(&padded),
                }
            }
            s.trim_end().to_owned()
        };
        writeln!(
            out,
            "{}",
            line(self.headers.iter().map(String::as_str).collect())
        )?;
        for row in &self.rows {
            writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
        Ok(())
    }
}

/// `text` with control characters escaped.
pub fn visible(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// RFC 3339 with milliseconds and the explicit offset of the time's zone (for local times;
/// UTC instants use [`crate::model::time::format`], which writes `Z`).
pub fn rfc3339<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A compact local-zone time for tables: `2025-01-20 09:30:00 GMT`.
pub fn human_time(t: &DateTime<chrono_tz::Tz>) -> String {
    t.format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

/// An RFC 3339 UTC time (as JSON carries it) in the local zone, for a table on a terminal.
pub fn local_time_text(value: &serde_json::Value) -> Option<String> {
    let text = value.as_str()?;
    let t = DateTime::parse_from_rfc3339(text).ok()?;
    Some(
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S%.3f %Z")
            .to_string(),
    )
}

pub fn human_utc(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// CSV (RFC 4180) with a header row, to stdout: values as they are, quoted where needed.
pub fn print_csv(
    headers: &[String],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(io::stdout().lock());
    out.write_record(headers)?;
    for row in rows {
        out.write_record(&row)?;
    }
    out.flush()?;
    Ok(())
}

/// The SGR colour of a state word, if it has one.
fn state_colour(state: &str) -> Option<&'static str> {
    match state {
        "COMPLETED" | "REUSED" | "alive" => Some("32"),
        "FAILED" | "CRASHED" | "lost" => Some("31"),
        "CANCELLED" | "SKIPPED" | "gone" => Some("33"),
        "RUNNING" | "RETRYING" => Some("36"),
        _ => None,
    }
}

/// Colour on standard output: only on a terminal, never with NO_COLOR set (non-empty) or
/// TERM=dumb.
pub fn colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
    stdout_is_terminal() && !no_color && !dumb
}

/// Whether standard output is a terminal (tables with local times; colour unless NO_COLOR).
pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal()
}

/// Prints `items` as data when `format` asks for it: JSON as serde writes it, or CSV with one
/// row per item and its JSON fields as columns (nested values as JSON text, times RFC 3339
/// UTC). False for a table, which the caller prints.
pub fn data(items: &impl Serialize, format: super::OutputFormat) -> anyhow::Result<bool> {
    match format {
        super::OutputFormat::Table => Ok(false),
        super::OutputFormat::Json => print_json(items).map(|()| true),
        super::OutputFormat::Csv => {
            let value = serde_json::to_value(items)?;
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = match value {
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::Object(fields) => fields,
                        other => std::iter::once(("value".to_owned(), other)).collect(),
                    })
                    .collect(),
                other => anyhow::bail!("CSV needs a list, not {other}"),
            };
            let mut headers: Vec<String> = Vec::new();
            for row in &rows {
                for key in row.keys() {
                    if !headers.contains(key) {
                        headers.push(key.clone());
                    }
                }
            }
            let cell = |v: Option<&serde_json::Value>| match v {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            let records = rows
                .iter()
                .map(|row| headers.iter().map(|h| cell(row.get(h))).collect());
            print_csv(&headers, records).map(|()| true)
        }
    }
}

pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_forge_rows_or_drive_the_terminal() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["x\nTIME  forged".into(), "\u{1b}[31mred".into()]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("x\\nTIME") && text.contains("\\u{1b}[31m"),
            "{text}"
        );
    }

    #[test]
    fn states_are_coloured_only_when_asked_and_padding_ignores_the_codes() {
        let mut table = Table::new(&["RUN", "STATUS", "AGENT"]);
        table.states = Some(1);
        table.row(vec!["r1".into(), "FAILED".into(), "a".into()]);
        table.row(vec!["r2".into(), "QUEUED".into(), "b".into()]);
        let mut out = Vec::new();
        table.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\u{1b}[31mFAILED  \u{1b}[0ma"), "{text}");
        assert!(text.contains("QUEUED  b"), "{text}");
    }
}
