//! Retention (`[retention]`, `cdktr gc`): runs and output removed by age, count and size,
//! `--dry-run` removing nothing, the background pass, and `--compact` shrinking the file of a
//! stopped principal. Real principal, agent and DuckDB file; counts read back with `cdktr query`.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::cluster::{start_agent, wait_for, Api, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(60);

/// `SELECT ...` with one row through `cdktr query --json`.
fn row(ws: &Workspace, api: &str, sql: &str) -> serde_json::Value {
    let run = ws.run(&["--principal", api, "query", "--json", sql]);
    assert_eq!(run.code, Some(0), "{sql}: {}", run.stderr);
    run.json()["rows"][0].clone()
}

fn counts(ws: &Workspace, api: &str) -> (u64, u64) {
    let r = row(
        ws,
        api,
        "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM logs) AS logs",
    );
    (
        r["runs"].as_u64().unwrap_or(0),
        r["logs"].as_u64().unwrap_or(0),
    )
}

fn gc(ws: &Workspace, api: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--principal", api, "gc", "--json"];
    all.extend_from_slice(args);
    let run = ws.run(&all);
    assert_eq!(run.code, Some(0), "gc {args:?}: {}", run.stderr);
    run.json()
}

fn workflow(ws: &Workspace, id: &str, script: &str) {
    ws.write(
        &format!("wf/{id}.yml"),
        &format!("name: {id}\ntasks:\n  t:\n    name: T\n    config: !Shell\n      script: \"{script}\"\n"),
    );
}

#[test]
fn gc_removes_runs_beyond_the_count_and_output_beyond_the_size_and_dry_run_removes_nothing() {
    let ws = Workspace::new();
    workflow(&ws, "small", "echo one; echo two");
    workflow(&ws, "lines", "seq 1 1000");
    let env = [
        ("CDKTR_RETENTION_MAX_RUNS_PER_WORKFLOW", "2"),
        ("CDKTR_RETENTION_MAX_LOG_BYTES", "2KB"),
    ];
    let p = Principal::start(&ws, &[], &env);
    let _agent = start_agent(&ws, &p.api, "one", 2, &[]);
    let api = Api::connect(&p.api);
    let mut small = Vec::new();
    for _ in 0..4 {
        let run = api.trigger("small");
        api.wait_done(&run, LONG);
        small.push(run);
    }
    let lines = api.trigger("lines");
    api.wait_done(&lines, LONG);
    assert_eq!(counts(&ws, &p.api), (5, 1008));

    let dry = gc(&ws, &p.api, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["removed"]["runs"], 2, "{dry}");
    assert!(
        dry["removed"]["log_lines"].as_u64().unwrap_or(0) > 4,
        "{dry}"
    );
    assert_eq!(
        counts(&ws, &p.api),
        (5, 1008),
        "a dry run removed something"
    );

    let done = gc(&ws, &p.api, &[]);
    assert_eq!(
        done["removed"], dry["removed"],
        "the dry run counted otherwise"
    );
    let kept = ws.run(&[
        "--principal",
        &p.api,
        "query",
        "--json",
        "SELECT run_id FROM runs WHERE workflow_id = 'small' ORDER BY queued_at",
    ]);
    let kept: Vec<String> = kept.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["run_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kept, small[2..], "the newest two runs are kept");
    // Output trimmed to the budget, oldest lines first: the last lines of `seq` remain.
    let logs = row(
        &ws,
        &p.api,
        "SELECT sum(strlen(line)) AS bytes, max(line::INTEGER) FILTER (WHERE run_id IN \
         (SELECT run_id FROM runs WHERE workflow_id = 'lines')) AS last FROM logs",
    );
    assert!(
        logs["bytes"].as_u64().unwrap_or(u64::MAX) <= 2_000,
        "{logs}"
    );
    assert_eq!(logs["last"], 1000, "{logs}");
    // Nothing more to do, and the pass is in the audit log.
    let again = gc(&ws, &p.api, &[]);
    assert_eq!(again["removed"]["runs"], 0, "{again}");
    let audit = ws.run(&["--principal", &p.api, "audit", "--action", "gc", "--json"]);
    assert_eq!(
        audit.json().as_array().map(Vec::len),
        Some(2),
        "{}",
        audit.stdout
    );
}

#[test]
fn the_principal_applies_retention_by_age_in_the_background() {
    let ws = Workspace::new();
    workflow(&ws, "small", "echo one");
    let env = [
        ("CDKTR_RETENTION_MAX_AGE", "3s"),
        ("CDKTR_RETENTION_INTERVAL", "1s"),
    ];
    let p = Principal::start(&ws, &[], &env);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("small");
    api.wait_done(&run, LONG);
    assert_eq!(counts(&ws, &p.api).0, 1);
    // Three seconds later the run is older than max_age and a background pass removes it.
    wait_for(LONG, "the background pass to remove the old run", || {
        (counts(&ws, &p.api) == (0, 0)).then_some(())
    });
    // A new run is kept: only age counts.
    let fresh = api.trigger("small");
    api.wait_done(&fresh, LONG);
    assert_eq!(counts(&ws, &p.api).0, 1);
}

#[test]
fn gc_compact_shrinks_the_file_of_a_stopped_principal_and_refuses_a_running_one() {
    let ws = Workspace::new();
    workflow(&ws, "noisy", "seq 1 100000");
    workflow(&ws, "small", "echo kept");
    let env = [("CDKTR_RETENTION_MAX_RUNS_PER_WORKFLOW", "1")];
    let mut p = Principal::start(&ws, &[], &env);
    let mut agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    for workflow in ["noisy", "noisy", "small"] {
        let run = api.trigger(workflow);
        api.wait_done(&run, LONG);
    }
    let db = p.db.display().to_string();
    let running = ws.run(&["gc", "--compact", "--db", &db]);
    assert_eq!(running.code, Some(2), "{}", running.stderr);
    assert!(
        running.stderr.contains("principal stopped"),
        "{}",
        running.stderr
    );

    agent.signal(Signal::SIGTERM);
    agent.wait_exit(LONG);
    p.daemon.signal(Signal::SIGTERM);
    p.daemon.wait_exit(LONG);
    let before = std::fs::metadata(&p.db).expect("db").len();
    let compacted = ws
        .cdktr()
        .args(["gc", "--compact", "--db", &db, "--json"])
        .env("CDKTR_RETENTION_MAX_RUNS_PER_WORKFLOW", "1")
        .output()
        .expect("run cdktr");
    let compacted = crate::common::Run::from(compacted);
    assert_eq!(compacted.code, Some(0), "{}", compacted.stderr);
    let report = compacted.json();
    assert_eq!(report["removed"]["runs"], 1, "{report}");
    assert_eq!(report["removed"]["log_lines"], 100_000, "{report}");
    let after = std::fs::metadata(&p.db).expect("db").len();
    assert!(
        after < before,
        "the file did not shrink: {before} -> {after}"
    );
    assert_eq!(report["file_bytes_after"], after);
    // The compacted file is whole: a principal serves its history.
    let p = Principal::start(&ws, &[], &[]);
    assert_eq!(counts(&ws, &p.api), (2, 100_001));
}
