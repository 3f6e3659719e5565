//! The answer to a read-only SQL query (`cdktr query`).

use serde::{Deserialize, Serialize};

/// A query's answer: its columns, then its rows (one JSON value per column: numbers, text,
/// `null`, times as RFC 3339 UTC text, lists as arrays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<QueryColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// How long the principal took to answer.
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryColumn {
    pub name: String,
    /// DuckDB's type (`VARCHAR`, `BIGINT`, `TIMESTAMP` ...).
    #[serde(rename = "type")]
    pub kind: String,
}
