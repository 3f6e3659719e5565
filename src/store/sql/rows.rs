//! The rows of a query result as JSON: which column types can be read, and each value's JSON.

use duckdb::types::{TimeUnit, Value};

use super::SqlError;
use crate::protocol::control::QueryColumn;

/// The result's columns, and which are always NULL (DuckDB's `SQLNULL` type: `SELECT NULL`);
/// an error for a column of a type this reader has no text for.
pub fn describe(stmt: &duckdb::Statement<'_>) -> Result<(Vec<QueryColumn>, Vec<bool>), SqlError> {
    use duckdb::core::LogicalTypeId as T;
    let mut columns = Vec::new();
    let mut nulls = Vec::new();
    for (index, name) in stmt.column_names().into_iter().enumerate() {
        let id = stmt.column_logical_type(index).id();
        let column = QueryColumn {
            name,
            kind: format!("{id:?}").to_uppercase(),
        };
        let readable = matches!(
            id,
            T::Boolean
                | T::Tinyint
                | T::Smallint
                | T::Integer
                | T::Bigint
                | T::UTinyint
                | T::USmallint
                | T::UInteger
                | T::UBigint
                | T::Hugeint
                | T::UHugeint
                | T::Float
                | T::Double
                | T::Decimal
                | T::Varchar
                | T::Blob
                | T::Enum
                | T::Date
                | T::Time
                | T::Interval
                | T::Timestamp
                | T::TimestampS
                | T::TimestampMs
                | T::TimestampNs
                | T::TimestampTZ
                | T::List
                | T::Struct
                | T::Map
                | T::Array
                | T::SqlNull
        );
        if !readable {
            return Err(unreadable(&column));
        }
        nulls.push(id == T::SqlNull);
        columns.push(column);
    }
    Ok((columns, nulls))
}

pub fn unreadable(column: &QueryColumn) -> SqlError {
    SqlError::Invalid(format!(
        "column `{}` has type {}, which cdktr query cannot print: cast it, e.g. CAST(... AS VARCHAR)",
        column.name, column.kind
    ))
}

/// A DuckDB value as JSON: numbers as numbers (decimals and 128-bit integers that do not fit
/// as text), times as RFC 3339 UTC text, lists as arrays, structs and maps as objects.
pub fn json(value: Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(b),
        Value::TinyInt(n) => n.into(),
        Value::SmallInt(n) => n.into(),
        Value::Int(n) => n.into(),
        Value::BigInt(n) => n.into(),
        Value::UTinyInt(n) => n.into(),
        Value::USmallInt(n) => n.into(),
        Value::UInt(n) => n.into(),
        Value::UBigInt(n) => n.into(),
        Value::HugeInt(n) => i64::try_from(n).map_or_else(|_| J::String(n.to_string()), J::from),
        Value::UHugeInt(n) => u64::try_from(n).map_or_else(|_| J::String(n.to_string()), J::from),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(f)).map_or(J::Null, J::Number),
        Value::Double(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        Value::Decimal(d) => {
            let text = d.to_string();
            text.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(J::String(text), J::Number)
        }
        Value::Timestamp(unit, n) => {
            let micros = match unit {
                TimeUnit::Second => n.saturating_mul(1_000_000),
                TimeUnit::Millisecond => n.saturating_mul(1_000),
                TimeUnit::Microsecond => n,
                TimeUnit::Nanosecond => n / 1_000,
            };
            chrono::DateTime::from_timestamp_micros(micros)
                .map_or(J::Null, |t| J::String(crate::model::time::format(&t)))
        }
        Value::Date32(days) => chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(days))))
            .map_or(J::Null, |d| J::String(d.to_string())),
        Value::Time64(unit, n) => {
            let micros = match unit {
                TimeUnit::Second => n.saturating_mul(1_000_000),
                TimeUnit::Millisecond => n.saturating_mul(1_000),
                TimeUnit::Microsecond => n,
                TimeUnit::Nanosecond => n / 1_000,
            };
            let secs = micros.div_euclid(1_000_000);
            chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(secs).unwrap_or(0),
                u32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
            )
            .map_or(J::Null, |t| J::String(t.to_string()))
        }
        Value::Interval {
            months,
            days,
            nanos,
        } => J::String(format!(
            "{months} months {days} days {:.3} s",
            nanos as f64 / 1e9
        )),
        Value::Text(s) | Value::Enum(s) => J::String(s),
        Value::Blob(b) | Value::Geometry(b) => J::String(String::from_utf8_lossy(&b).into_owned()),
        Value::List(items) | Value::Array(items) => J::Array(items.into_iter().map(json).collect()),
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), json(v.clone())))
                .collect(),
        ),
        Value::Map(entries) => J::Array(
            entries
                .iter()
                .map(|(k, v)| J::Array(vec![json(k.clone()), json(v.clone())]))
                .collect(),
        ),
        Value::Union(inner) => json(*inner),
        other => J::String(format!("{other:?}")),
    }
}

/// About how many bytes `value` takes as JSON text.
pub fn json_size(value: &serde_json::Value) -> usize {
    use serde_json::Value as J;
    match value {
        J::Null | J::Bool(_) => 5,
        J::Number(_) => 20,
        J::String(s) => s.len() + 2,
        J::Array(items) => 2 + items.iter().map(|v| json_size(v) + 1).sum::<usize>(),
        J::Object(fields) => {
            2 + fields
                .iter()
                .map(|(k, v)| k.len() + 4 + json_size(v))
                .sum::<usize>()
        }
    }
}
