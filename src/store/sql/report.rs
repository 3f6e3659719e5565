//! `cdktr report`: per workflow, over a period, the ended runs, their success rate, p50/p95
//! duration, the last failure with its reason, and the same figures for the period before it.
//! One query over the views, run by the query engine like any other.

use chrono::{DateTime, Utc};

/// A text literal for SQL (single quotes doubled).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn at(t: DateTime<Utc>) -> String {
    format!("TIMESTAMP {}", literal(&t.naive_utc().to_string()))
}

/// The report's query for runs queued in `[since, now)`, compared with the period of the same
/// length before it; one workflow's only with `workflow`.
pub fn sql(since: DateTime<Utc>, now: DateTime<Utc>, workflow: Option<&str>) -> String {
    let previous = since - (now - since);
    let only = workflow
        .map(|w| format!("AND workflow_id = {}", literal(w)))
        .unwrap_or_default();
    format!(
        "WITH cur AS (
             SELECT * FROM runs
             WHERE queued_at >= {since} AND queued_at < {now} AND finished_at IS NOT NULL {only}),
         prev AS (
             SELECT * FROM runs
             WHERE queued_at >= {previous} AND queued_at < {since} AND finished_at IS NOT NULL {only}),
         c AS (
             SELECT workflow_id, count(*) AS runs,
                    count(*) FILTER (WHERE status = 'COMPLETED') AS succeeded,
                    quantile_cont(duration_s, 0.5) AS p50_s, quantile_cont(duration_s, 0.95) AS p95_s
             FROM cur GROUP BY workflow_id),
         p AS (
             SELECT workflow_id, count(*) AS runs,
                    count(*) FILTER (WHERE status = 'COMPLETED') AS succeeded,
                    quantile_cont(duration_s, 0.5) AS p50_s
             FROM prev GROUP BY workflow_id),
         f AS (
             SELECT workflow_id, arg_max(run_id, queued_at) AS run_id, arg_max(status, queued_at) AS status,
                    max(finished_at) AS finished_at
             FROM cur WHERE status <> 'COMPLETED' GROUP BY workflow_id)
         SELECT c.workflow_id, c.runs, c.succeeded, c.p50_s, c.p95_s,
                p.runs AS previous_runs, p.succeeded AS previous_succeeded, p.p50_s AS previous_p50_s,
                f.run_id AS last_failure_run, f.status AS last_failure_status,
                f.finished_at AS last_failure_at,
                (SELECT coalesce(t.reason, 'exit code ' || t.exit_code, t.status)
                 FROM task_runs t
                 WHERE t.run_id = f.run_id AND t.status IN ('FAILED', 'CRASHED', 'CANCELLED')
                 ORDER BY t.finished_at NULLS LAST LIMIT 1) AS last_failure_reason
         FROM c LEFT JOIN p USING (workflow_id) LEFT JOIN f USING (workflow_id)
         ORDER BY c.workflow_id",
        since = at(since),
        now = at(now),
        previous = at(previous),
    )
}
