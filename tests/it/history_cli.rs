//! `cdktr runs list` filters, as an operator scripts them: the real binary against a real
//! principal, JSON parsed.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::cluster::{start_agent, Api, Principal};
use crate::common::{valid_workflow, Workspace};

const LONG: Duration = Duration::from_secs(30);

/// `cdktr runs list ARGS --json` against `api`: the run ids, newest first.
fn listed(ws: &Workspace, api: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--principal", api, "runs", "list", "--json"];
    all.extend_from_slice(args);
    let run = ws.run(&all);
    assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
    run.json()
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", run.stdout))
        .iter()
        .map(|r| r["run_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn runs_list_filters_by_trigger_agent_status_workflow_and_time_newest_first() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    ws.write(
        "wf/broken.yml",
        "name: Broken\ntasks:\n  a: {name: A, config: !Shell {script: 'exit 3'}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let mut one = start_agent(&ws, &p.api, "one", 1, &[]);
    // On agent one: a run by the API, one by the CLI, a failing one.
    let by_api = api.trigger("hello");
    api.wait_done(&by_api, LONG);
    let cli = ws.run(&["--principal", &p.api, "run", "hello"]);
    assert_eq!(cli.code, Some(0), "{}", cli.stderr);
    let by_cli = cli.stdout.trim().to_owned();
    api.wait_done(&by_cli, LONG);
    let failed = api.trigger("broken");
    api.wait_done(&failed, LONG);
    let first_queued = api.run(&by_api).summary.queued_at;
    // Then on agent two.
    one.signal(Signal::SIGTERM);
    one.wait_exit(LONG);
    let _two = start_agent(&ws, &p.api, "two", 1, &[]);
    let on_two = api.trigger("hello");
    api.wait_done(&on_two, LONG);

    let all = listed(&ws, &p.api, &[]);
    assert_eq!(
        all,
        vec![
            on_two.clone(),
            failed.clone(),
            by_cli.clone(),
            by_api.clone()
        ]
    );
    assert_eq!(
        listed(&ws, &p.api, &["--trigger", "cli"]),
        vec![by_cli.clone()]
    );
    assert_eq!(listed(&ws, &p.api, &["--trigger", "api"]).len(), 3);
    assert_eq!(listed(&ws, &p.api, &["--agent", "one"]).len(), 3);
    assert_eq!(
        listed(&ws, &p.api, &["--agent", "two"]),
        vec![on_two.clone()]
    );
    let two_id = api
        .run(&on_two)
        .summary
        .agent
        .map(|a| a.to_string())
        .unwrap_or_default();
    assert_eq!(
        listed(&ws, &p.api, &["--agent", &two_id]),
        vec![on_two.clone()]
    );
    assert_eq!(
        listed(&ws, &p.api, &["--status", "FAILED"]),
        vec![failed.clone()]
    );
    assert_eq!(
        listed(&ws, &p.api, &["--workflow", "broken"]),
        vec![failed.clone()]
    );
    assert_eq!(listed(&ws, &p.api, &["--limit", "1"]), vec![on_two.clone()]);
    assert_eq!(listed(&ws, &p.api, &["--since", "1h"]).len(), 4);
    assert!(listed(&ws, &p.api, &["--until", "1h"]).is_empty());
    // Times on the wire are in milliseconds, in the store in microseconds: a millisecond after
    // the first run was queued, and the millisecond it was.
    let until = (first_queued + chrono::Duration::milliseconds(1)).to_rfc3339();
    let since = first_queued.to_rfc3339();
    assert_eq!(
        listed(&ws, &p.api, &["--until", &until]),
        vec![by_api.clone()]
    );
    assert_eq!(
        listed(
            &ws,
            &p.api,
            &["--since", &since, "--trigger", "api", "--agent", "one"]
        ),
        vec![failed, by_api]
    );
    // A time that is neither: exit 2, naming the flag.
    let bad = ws.run(&[
        "--principal",
        &p.api,
        "runs",
        "list",
        "--since",
        "yesterday",
    ]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("--since `yesterday`"), "{}", bad.stderr);
}

/// The `line` of each JSON line of `cdktr logs ... --json`.
fn lines_of(run: &crate::common::Run) -> Vec<String> {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["line"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

#[test]
fn logs_filter_by_stream_and_pattern_in_history_across_runs_and_live() {
    let ws = Workspace::new();
    ws.write(
        "wf/noisy.yml",
        "name: Noisy\ntasks:\n  a: {name: A, config: !Shell {script: \"echo ok 1; echo ERROR disk >&2; echo ok 2; echo WARN slow\"}}\n",
    );
    ws.write(
        "wf/slowly.yml",
        "name: Slowly\ntasks:\n  a: {name: A, config: !Shell {script: \"echo a1; sleep 1; echo ERROR late; echo a2\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let first = api.trigger("noisy");
    api.wait_done(&first, LONG);
    api.wait_done(&api.trigger("noisy"), LONG);
    let logs = |args: &[&str]| {
        let mut all = vec!["--principal", p.api.as_str(), "logs"];
        all.extend_from_slice(args);
        all.push("--json");
        lines_of(&ws.run(&all))
    };
    assert_eq!(logs(&[&first, "--stream", "stderr"]), ["ERROR disk"]);
    assert_eq!(
        logs(&[&first, "--stream", "stdout"]),
        ["ok 1", "ok 2", "WARN slow"]
    );
    // stdout and stderr are read side by side: their lines interleave in arrival order.
    let mut matched = logs(&[&first, "--grep", "ERROR|WARN"]);
    matched.sort();
    assert_eq!(matched, ["ERROR disk", "WARN slow"]);
    assert_eq!(
        logs(&[&first, "--grep", "^ok", "--stream", "stdout"]),
        ["ok 1", "ok 2"]
    );
    // Across runs.
    let across = logs(&["query", "--workflow", "noisy", "--grep", "ERROR"]);
    assert_eq!(across, ["ERROR disk", "ERROR disk"]);
    // Live: history and the stream, filtered alike, until the run ends.
    let live = api.trigger("slowly");
    assert_eq!(
        logs(&[&live, "--follow", "--grep", "ERROR"]),
        ["ERROR late"]
    );
    // A pattern that is not one: the CLI says so (exit 2); so does the principal.
    let bad = ws.run(&["--principal", &p.api, "logs", &first, "--grep", "(unclosed"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("--grep"), "{}", bad.stderr);
    for pattern in ["(unclosed".to_owned(), "a".repeat(2000)] {
        let refused = api.ask(cdktr::protocol::control::ControlRequest::QueryLogs {
            workflow: None,
            since: None,
            until: None,
            after: None,
            limit: None,
            stream: None,
            grep: Some(pattern),
        });
        assert!(format!("{refused:?}").contains("grep"), "{refused:?}");
    }
    // The principal goes on serving.
    assert_eq!(api.status().workflows_loaded, 2);
}

/// `cdktr logs query --follow`: the stored lines, then new ones as runs print them, each once,
/// filters applied to both; it runs until interrupted.
#[test]
fn logs_query_follow_continues_from_history_into_live_lines_without_gap_or_duplicate() {
    use std::io::BufRead;
    let ws = Workspace::new();
    ws.write(
        "wf/words.yml",
        "name: Words\nparams:\n  word: {default: first}\ntasks:\n  say:\n    name: Say\n    config: !Shell\n      script: \"echo said $CDKTR_PARAM_WORD; echo noise\"\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let stored = api.trigger("words");
    api.wait_done(&stored, LONG);

    let mut child = ws
        .cdktr()
        .args([
            "--principal",
            &p.api,
            "logs",
            "query",
            "--workflow",
            "words",
        ])
        .args(["--since", "1h", "--grep", "^said", "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start cdktr logs query --follow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let read_until = |text: &str, seen: &mut Vec<serde_json::Value>| {
        let deadline = std::time::Instant::now() + LONG;
        while !seen.iter().any(|l| l["line"] == text) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no `{text}` within {LONG:?}: {seen:?}"));
            seen.push(serde_json::from_str(&line).expect("a JSON line"));
        }
    };
    read_until("said first", &mut seen);
    // Lines printed after the command started arrive too, filtered the same way.
    for word in ["second", "third"] {
        let run = api.call(async |c| {
            let params = [("word".to_owned(), word.to_owned())].into_iter().collect();
            c.trigger("words", params, "api").await
        });
        let run = run.expect("trigger");
        api.wait_done(run.as_str(), LONG);
    }
    read_until("said third", &mut seen);
    read_until("said second", &mut seen);
    child.kill().expect("stop the follower");
    let _ = child.wait();
    let mut ids: Vec<String> = seen
        .iter()
        .map(|l| {
            format!(
                "{}/{}/{}/{}",
                l["run_id"], l["task_id"], l["stream"], l["seq"]
            )
        })
        .collect();
    let texts: Vec<&str> = seen
        .iter()
        .map(|l| l["line"].as_str().unwrap_or(""))
        .collect();
    assert!(
        texts.iter().all(|t| t.starts_with("said")),
        "filter: {texts:?}"
    );
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "a line printed twice: {texts:?}");
    assert_eq!(count, 3, "{texts:?}");
    // A run's lines within a time window: printed in the last hour, not before, not later.
    let window = |args: &[&str]| {
        let mut all = vec![
            "--principal",
            p.api.as_str(),
            "logs",
            stored.as_str(),
            "--json",
        ];
        all.extend_from_slice(args);
        let run = ws.run(&all);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        run.stdout.lines().count()
    };
    assert_eq!(window(&["--since", "1h"]), 2);
    assert_eq!(window(&["--until", "1h"]), 0);
    assert_eq!(window(&["--since", "2999-01-01T00:00:00Z"]), 0);
    assert_eq!(
        window(&["--since", "1h", "--until", "2999-01-01T00:00:00Z"]),
        2
    );
    // --follow with --until is a usage error.
    let both = ws.run(&[
        "--principal",
        &p.api,
        "logs",
        "query",
        "--follow",
        "--until",
        "1h",
    ]);
    assert_eq!(both.code, Some(2), "{}", both.stderr);
}
