//! `cdktr report`: the principal's per-workflow figures, shaped for people and scripts.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::format::format_ms;
use super::output::{print_json, Table};
use crate::protocol::control::QueryResult;

/// One workflow's figures, from a row of the report query.
fn shape(columns: &[String], row: &[Value]) -> Value {
    let get = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .and_then(|i| row.get(i))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let rate = |ok: &Value, all: &Value| match (ok.as_f64(), all.as_f64()) {
        (Some(ok), Some(all)) if all > 0.0 => json!(ok / all),
        _ => Value::Null,
    };
    let (runs, succeeded) = (get("runs"), get("succeeded"));
    let success_rate = rate(&succeeded, &runs);
    let (prev_runs, prev_ok, prev_p50) = (
        get("previous_runs"),
        get("previous_succeeded"),
        get("previous_p50_s"),
    );
    let previous_rate = rate(&prev_ok, &prev_runs);
    let delta = |now: &Value, before: &Value| match (now.as_f64(), before.as_f64()) {
        (Some(a), Some(b)) => json!(a - b),
        _ => Value::Null,
    };
    let previous = if prev_runs.is_null() {
        Value::Null
    } else {
        json!({"runs": prev_runs, "success_rate": previous_rate, "p50_s": prev_p50})
    };
    let trend = if prev_runs.is_null() {
        Value::Null
    } else {
        json!({
            "runs": delta(&runs, &prev_runs),
            "success_rate": delta(&success_rate, &previous_rate),
            "p50_s": delta(&get("p50_s"), &prev_p50),
        })
    };
    let last_failure = if get("last_failure_run").is_null() {
        Value::Null
    } else {
        json!({
            "run_id": get("last_failure_run"),
            "status": get("last_failure_status"),
            "at": get("last_failure_at"),
            "reason": get("last_failure_reason"),
        })
    };
    let failed = match (runs.as_u64(), succeeded.as_u64()) {
        (Some(r), Some(s)) => json!(r.saturating_sub(s)),
        _ => Value::Null,
    };
    json!({
        "workflow_id": get("workflow_id"),
        "runs": runs,
        "succeeded": succeeded,
        "failed": failed,
        "success_rate": success_rate,
        "p50_s": get("p50_s"),
        "p95_s": get("p95_s"),
        "last_failure": last_failure,
        "previous": previous,
        "trend": trend,
    })
}

pub fn print(
    since: DateTime<Utc>,
    result: &QueryResult,
    format: super::OutputFormat,
) -> anyhow::Result<()> {
    let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    let workflows: Vec<Value> = result.rows.iter().map(|r| shape(&columns, r)).collect();
    match format {
        super::OutputFormat::Json => {
            return print_json(&json!({
                "since": crate::model::time::format(&since),
                "workflows": workflows,
            }))
        }
        super::OutputFormat::Csv => return super::output::data(&workflows, format).map(drop),
        super::OutputFormat::Table => {}
    }
    if workflows.is_empty() {
        println!("no ended runs since {}", super::output::human_utc(&since));
        return Ok(());
    }
    let seconds = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |s| format_ms((s * 1000.0) as i64))
    };
    let percent = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
    };
    let mut table = Table::new(&[
        "WORKFLOW",
        "RUNS",
        "SUCCESS",
        "P50",
        "P95",
        "TREND (RUNS, SUCCESS, P50)",
        "LAST FAILURE",
    ]);
    for w in &workflows {
        let trend = &w["trend"];
        let trend = if trend.is_null() {
            "new".to_owned()
        } else {
            format!(
                "{:+}, {:+.1} pts, {}",
                trend["runs"].as_f64().unwrap_or(0.0),
                trend["success_rate"].as_f64().unwrap_or(0.0) * 100.0,
                trend["p50_s"]
                    .as_f64()
                    .map_or("-".into(), |d| format!("{d:+.2}s"))
            )
        };
        let failure = &w["last_failure"];
        let failure = if failure.is_null() {
            "-".to_owned()
        } else {
            format!(
                "{} {} {}: {}",
                failure["at"].as_str().unwrap_or("-"),
                failure["run_id"].as_str().unwrap_or("-"),
                failure["status"].as_str().unwrap_or("-"),
                failure["reason"].as_str().unwrap_or("-"),
            )
        };
        table.row(vec![
            w["workflow_id"].as_str().unwrap_or("-").to_owned(),
            w["runs"].to_string(),
            percent(&w["success_rate"]),
            seconds(&w["p50_s"]),
            seconds(&w["p95_s"]),
            trend,
            failure,
        ]);
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(())
}
