//! Human output helpers: aligned tables and timestamps. `--json` output is serde's.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serialize;

/// A table whose columns are as wide as their widest cell.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table::with_headers(headers.iter().map(|h| (*h).to_owned()).collect())
    }

    pub fn with_headers(headers: Vec<String>) -> Self {
        Table {
            headers: headers.into_iter().map(visible).collect(),
            rows: Vec::new(),
        }
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
                if i == last {
                    s.push_str(cell);
                } else {
                    s.push_str(&format!("{cell:<w$}  "));
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

/// Whether standard output is a terminal (tables with local times; colour unless NO_COLOR).
pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal()
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
}
