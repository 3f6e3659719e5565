//! `cdktr query`: read-only SQL over the history views, through the principal or (offline)
//! straight from a database file.

use std::path::Path;
use std::process::ExitCode;

use super::output::{print_csv, print_json, Table};
use super::{OutputFormat, Refused};
use crate::protocol::control::QueryResult;
use crate::store::sql::{self, Limits, SqlError};
use crate::transport::Client;

/// Checks `--max-rows` and parses `--timeout`.
pub fn limits(
    max_rows: Option<u32>,
    timeout: Option<&str>,
) -> anyhow::Result<Option<std::time::Duration>> {
    if max_rows == Some(0) {
        anyhow::bail!("--max-rows: must be more than zero");
    }
    timeout
        .map(|t| {
            humantime::parse_duration(t)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| anyhow::anyhow!("--timeout `{t}`: expected a duration such as 5s"))
        })
        .transpose()
}

pub async fn remote(
    client: &Client,
    text: &str,
    max_rows: Option<u32>,
    timeout: Option<std::time::Duration>,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let result = client.query(text, max_rows, timeout).await?;
    print(&result, format)?;
    Ok(ExitCode::SUCCESS)
}

/// Answers the query from `db` itself, within `limits`.
pub fn offline(
    db: &Path,
    text: &str,
    limits: Limits,
    format: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let engine = sql::offline(db).map_err(anyhow::Error::msg)?;
    match engine.run(text, limits) {
        Ok(result) => {
            print(&result, format)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ SqlError::Refused(_)) => Err(Refused(e.to_string()).into()),
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

pub fn print(result: &QueryResult, format: OutputFormat) -> anyhow::Result<()> {
    let headers: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    match format {
        OutputFormat::Json => {
            // One object per row, keyed by column name, and the columns with their types.
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
                .rows
                .iter()
                .map(|row| headers.iter().cloned().zip(row.iter().cloned()).collect())
                .collect();
            print_json(&serde_json::json!({
                "columns": result.columns,
                "rows": rows,
                "elapsed_ms": result.elapsed_ms,
            }))
        }
        OutputFormat::Csv => print_csv(
            &headers,
            result
                .rows
                .iter()
                .map(|row| row.iter().map(|v| cell(v, false)).collect()),
        ),
        OutputFormat::Table => {
            let terminal = super::output::stdout_is_terminal();
            let mut table = Table::with_headers(headers);
            for row in &result.rows {
                let cells = row
                    .iter()
                    .zip(&result.columns)
                    .map(|(v, c)| {
                        if terminal && c.kind.starts_with("TIMESTAMP") {
                            super::output::local_time_text(v).unwrap_or_else(|| cell(v, true))
                        } else {
                            cell(v, true)
                        }
                    })
                    .collect();
                table.row(cells);
            }
            table.write(&mut std::io::stdout().lock())?;
            let n = result.rows.len();
            eprintln!(
                "({n} row{}, {} ms)",
                if n == 1 { "" } else { "s" },
                result.elapsed_ms
            );
            Ok(())
        }
    }
}

/// A value as text: strings as they are, NULL as empty (CSV) or `NULL` (table), numbers and
/// nested values as JSON.
fn cell(value: &serde_json::Value, table: bool) -> String {
    match value {
        serde_json::Value::Null if table => "NULL".into(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
