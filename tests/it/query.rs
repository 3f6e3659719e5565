//! `cdktr query`: read-only SQL over the history views, through the real binary against a real
//! principal (and offline, on the file of a stopped one). What is refused is refused by DuckDB;
//! the store is unchanged after each refusal, and the principal keeps serving.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::cluster::{start_agent, Api, Principal};
use crate::common::{Run, Workspace};

const LONG: Duration = Duration::from_secs(30);

const COUNTS: &str = "SELECT (SELECT count(*) FROM runs) AS runs, \
     (SELECT count(*) FROM task_runs) AS tasks, (SELECT count(*) FROM transitions) AS transitions, \
     (SELECT count(*) FROM logs) AS logs, (SELECT count(*) FROM agents) AS agents";

fn query(ws: &Workspace, api: &str, args: &[&str]) -> Run {
    let mut all = vec!["--principal", api, "query"];
    all.extend_from_slice(args);
    ws.run(&all)
}

/// The one row of `sql` as JSON (an object keyed by column).
fn one_row(ws: &Workspace, api: &str, sql: &str) -> serde_json::Value {
    let run = query(ws, api, &["--json", sql]);
    assert_eq!(run.code, Some(0), "{sql}: {}", run.stderr);
    let json = run.json();
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{sql}: {json}");
    rows[0].clone()
}

fn seeded() -> (Workspace, Principal, crate::common::cluster::Daemon) {
    let ws = Workspace::new();
    ws.write(
        "wf/words.yml",
        "name: Words\ntasks:\n  say:\n    name: Say\n    config: !Shell\n      script: \"echo 'please DELETE nothing'; echo 'ERROR: disk full' >&2\"\n",
    );
    ws.write(
        "wf/broken.yml",
        "name: Broken\ntasks:\n  a: {name: A, config: !Shell {script: 'exit 3'}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let agent = start_agent(&ws, &p.api, "one", 2, &[]);
    let api = Api::connect(&p.api);
    for workflow in ["words", "words", "broken"] {
        let run = api.trigger(workflow);
        api.wait_done(&run, LONG);
    }
    (ws, p, agent)
}

#[test]
fn query_answers_over_the_views_and_refuses_anything_but_a_read() {
    let (ws, p, _agent) = seeded();
    let before = one_row(&ws, &p.api, COUNTS);
    assert_eq!(before["runs"], 3, "{before}");
    assert_eq!(before["logs"], 4, "{before}");

    // A query that merely mentions DELETE works.
    let mentions = one_row(
        &ws,
        &p.api,
        "SELECT count(*) AS n FROM logs WHERE line LIKE '%DELETE%'",
    );
    assert_eq!(mentions["n"], 2);

    // (query, exit code): 5 refused, 2 not valid SQL over the views.
    let refused: &[(&str, i32)] = &[
        ("DELETE FROM runs", 5),
        ("DROP TABLE logs", 5),
        ("INSERT INTO runs SELECT * FROM runs", 5),
        ("UPDATE runs SET status = 'COMPLETED'", 5),
        ("CREATE TABLE x AS SELECT 1", 5),
        ("ATTACH '/tmp/cdktr-query-attack.db' AS x", 5),
        (
            "COPY (SELECT * FROM logs) TO '/tmp/cdktr-query-attack.csv'",
            5,
        ),
        ("INSTALL httpfs", 5),
        ("LOAD httpfs", 5),
        ("SELECT * FROM read_csv('/etc/passwd')", 5),
        ("PRAGMA enable_profiling", 5),
        ("SET threads = 1", 5),
        ("SELECT 1; DELETE FROM logs", 5),
        ("SELECT * FROM '/etc/passwd'", 5),
        ("SELECT * FROM read_text('/etc/passwd')", 5),
        ("DEL/**/ETE FROM logs", 2),
        ("CHECKPOINT", 5),
        ("EXPLAIN ANALYZE DELETE FROM logs", 5),
        ("DELETE FROM main.logs", 5),
    ];
    for (sql, code) in refused {
        let run = query(&ws, &p.api, &[sql]);
        assert_eq!(run.code, Some(*code), "{sql}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.is_empty(), "{sql}: {}", run.stdout);
        assert!(!run.stderr.trim().is_empty(), "{sql}: no reason given");
        assert_eq!(
            one_row(&ws, &p.api, COUNTS),
            before,
            "{sql} changed the store"
        );
    }
    assert!(!std::path::Path::new("/tmp/cdktr-query-attack.csv").exists());

    // A query that would run for ever is stopped at the time limit, named in the error.
    let forever = query(
        &ws,
        &p.api,
        &[
            "--timeout",
            "1s",
            "SELECT count(*) FROM range(1000000000000) a, range(1000) b",
        ],
    );
    assert_eq!(forever.code, Some(2), "{}", forever.stderr);
    assert!(forever.stderr.contains("time limit"), "{}", forever.stderr);
    // The row limit, named in the error.
    let many = query(&ws, &p.api, &["SELECT * FROM range(20000)"]);
    assert_eq!(many.code, Some(2), "{}", many.stderr);
    assert!(
        many.stderr.contains("row limit") && many.stderr.contains("principal.query_max_rows"),
        "{}",
        many.stderr
    );
    // A few huge values are stopped at the size limit (principal.max_message_bytes), not held
    // in the principal's memory.
    let huge = query(&ws, &p.api, &["SELECT repeat('x', 10000) FROM range(2000)"]);
    assert_eq!(huge.code, Some(2), "{}", huge.stderr);
    assert!(
        huge.stderr.contains("size limit") && huge.stderr.contains("principal.max_message_bytes"),
        "{}",
        huge.stderr
    );
    let capped = query(&ws, &p.api, &["--max-rows", "1", "SELECT * FROM runs"]);
    assert_eq!(capped.code, Some(2), "{}", capped.stderr);
    // And the principal keeps serving.
    assert_eq!(one_row(&ws, &p.api, COUNTS), before);
    let status = ws.run(&["--principal", &p.api, "status", "--json"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr);
}

#[test]
fn query_output_is_a_table_json_or_csv_with_utc_times() {
    let (ws, p, _agent) = seeded();
    let sql = "SELECT workflow_id, status, count(*) AS runs, min(queued_at) AS first \
               FROM runs GROUP BY ALL ORDER BY workflow_id";
    let json = query(&ws, &p.api, &["--json", sql]);
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let value = json.json();
    let columns: Vec<_> = value["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default(),
                c["type"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("workflow_id", "VARCHAR"),
            ("status", "VARCHAR"),
            ("runs", "BIGINT"),
            ("first", "TIMESTAMP")
        ]
    );
    let rows = value["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{value}");
    assert_eq!(rows[0]["workflow_id"], "broken");
    assert_eq!(rows[0]["status"], "FAILED");
    assert_eq!(rows[1]["runs"], 2);
    let first = rows[1]["first"].as_str().expect("time");
    assert!(
        first.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(first).is_ok(),
        "{first}"
    );

    let csv_run = query(&ws, &p.api, &["--output", "csv", sql]);
    assert_eq!(csv_run.code, Some(0), "{}", csv_run.stderr);
    let mut reader = csv::Reader::from_reader(csv_run.stdout.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .expect("csv header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(headers, ["workflow_id", "status", "runs", "first"]);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("csv row")).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[1][2], "2");
    assert_eq!(&records[1][3], first);
    // Lines with commas, quotes and newlines survive CSV.
    let tricky = query(
        &ws,
        &p.api,
        &[
            "--csv",
            "SELECT 'a, \"b\"' || chr(10) || 'c' AS text, NULL AS nothing",
        ],
    );
    let mut reader = csv::Reader::from_reader(tricky.stdout.as_bytes());
    let record = reader.records().next().expect("a row").expect("csv row");
    assert_eq!(&record[0], "a, \"b\"\nc");
    assert_eq!(&record[1], "");

    let table = query(&ws, &p.api, &[sql]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", table.stdout);
    assert!(lines[0].starts_with("workflow_id") && lines[0].contains("first"));
    assert!(table.stderr.contains("2 rows"), "{}", table.stderr);
}

#[test]
fn query_offline_reads_a_stopped_principals_file_and_not_a_running_ones() {
    let (ws, mut p, mut agent) = seeded();
    let db = p.db.display().to_string();
    let busy = ws.run(&[
        "query",
        "--offline",
        "--db",
        &db,
        "SELECT count(*) FROM runs",
    ]);
    assert_eq!(busy.code, Some(2), "{}", busy.stderr);
    assert!(busy.stderr.contains("running principal"), "{}", busy.stderr);

    agent.signal(Signal::SIGTERM);
    agent.wait_exit(LONG);
    p.daemon.signal(Signal::SIGTERM);
    p.daemon.wait_exit(LONG);
    let counted = ws.run(&[
        "query",
        "--offline",
        "--db",
        &db,
        "--json",
        "SELECT count(*) AS n, sum(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed FROM runs",
    ]);
    assert_eq!(counted.code, Some(0), "{}", counted.stderr);
    let row = &counted.json()["rows"][0];
    assert_eq!(row["n"], 3, "{row}");
    assert_eq!(row["failed"], 1, "{row}");
    let refused = ws.run(&["query", "--offline", "--db", &db, "DELETE FROM runs"]);
    assert_eq!(refused.code, Some(5), "{}", refused.stderr);
    let escape = ws.run(&[
        "query",
        "--offline",
        "--db",
        &db,
        "SELECT * FROM read_text('/etc/passwd')",
    ]);
    assert_eq!(escape.code, Some(5), "{}", escape.stderr);
    let missing = ws.run(&["query", "--offline", "--db", "nope.duckdb", "SELECT 1"]);
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no database file"),
        "{}",
        missing.stderr
    );
}

#[test]
fn report_gives_each_workflows_runs_success_rate_durations_and_last_failure() {
    let (ws, p, _agent) = seeded();
    let run = ws.run(&["--principal", &p.api, "report", "--since", "1h", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let report = run.json();
    let workflows = report["workflows"].as_array().expect("workflows");
    assert_eq!(workflows.len(), 2, "{report}");
    let broken = &workflows[0];
    assert_eq!(broken["workflow_id"], "broken");
    assert_eq!(broken["runs"], 1);
    assert_eq!(broken["failed"], 1);
    assert_eq!(broken["success_rate"], 0.0);
    assert_eq!(broken["last_failure"]["status"], "FAILED", "{broken}");
    let reason = broken["last_failure"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains('3'),
        "the reason names the exit code: {reason}"
    );
    let words = &workflows[1];
    assert_eq!(words["workflow_id"], "words");
    assert_eq!(words["runs"], 2);
    assert_eq!(words["success_rate"], 1.0);
    assert!(words["p50_s"].as_f64().is_some_and(|s| s >= 0.0), "{words}");
    assert!(words["p95_s"].as_f64().is_some_and(|s| s >= 0.0), "{words}");
    assert!(words["last_failure"].is_null(), "{words}");
    // Nothing ran in the hour before: no previous period, no trend.
    assert!(
        words["previous"].is_null() && words["trend"].is_null(),
        "{words}"
    );

    let one = ws.run(&[
        "--principal",
        &p.api,
        "report",
        "--workflow",
        "words",
        "--json",
    ]);
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    assert_eq!(one.json()["workflows"].as_array().map(Vec::len), Some(1));
    let table = ws.run(&["--principal", &p.api, "report"]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);
    assert!(table.stdout.contains("100.0%"), "{}", table.stdout);
    let future = ws.run(&[
        "--principal",
        &p.api,
        "report",
        "--since",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(future.code, Some(2), "{}", future.stderr);
}

/// `--output csv` (or `--csv`) on the listing commands: a header row of the JSON field names,
/// one record per item, times RFC 3339 UTC, parsed here with a CSV reader.
#[test]
fn listing_commands_print_csv_with_the_json_field_names() {
    let (ws, p, _agent) = seeded();
    let csv_of = |args: &[&str]| -> (Vec<String>, Vec<csv::StringRecord>) {
        let mut all = vec!["--principal", p.api.as_str()];
        all.extend_from_slice(args);
        let run = ws.run(&all);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
        let headers = reader
            .headers()
            .expect("a header row")
            .iter()
            .map(str::to_owned)
            .collect();
        let records = reader.records().map(|r| r.expect("a CSV record")).collect();
        (headers, records)
    };
    let column = |headers: &[String], name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {headers:?}"))
    };

    let (headers, runs) = csv_of(&["runs", "list", "--output", "csv"]);
    assert_eq!(runs.len(), 3);
    let (status, queued) = (column(&headers, "status"), column(&headers, "queued_at"));
    assert_eq!(&runs[0][status], "FAILED", "newest first");
    assert!(
        runs[0][queued].ends_with('Z')
            && chrono::DateTime::parse_from_rfc3339(&runs[0][queued]).is_ok(),
        "{}",
        &runs[0][queued]
    );
    let (headers, agents) = csv_of(&["agents", "list", "--csv"]);
    assert_eq!(agents.len(), 1);
    assert_eq!(&agents[0][column(&headers, "state")], "alive");
    let (headers, audit) = csv_of(&["audit", "--csv"]);
    assert_eq!(audit.len(), 3, "one entry per trigger");
    assert_eq!(&audit[0][column(&headers, "action")], "trigger");
    let (headers, report) = csv_of(&["report", "--csv"]);
    assert_eq!(report.len(), 2);
    assert_eq!(&report[1][column(&headers, "workflow_id")], "words");
    assert_eq!(&report[1][column(&headers, "runs")], "2");
    // --json and --csv together are a usage error.
    let both = ws.run(&["--principal", &p.api, "runs", "list", "--json", "--csv"]);
    assert_eq!(both.code, Some(2), "{}", both.stderr);
}
