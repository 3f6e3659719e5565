//! Regression tests, each named after a defect found by trying the product. Every one of them
//! failed before its fix.

use std::time::{Duration, Instant};

use cdktr::protocol::control::{ControlReply, ControlRequest};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::common::cluster::{start_agent, wait_for, Api, Principal};
use crate::common::{valid_workflow, Workspace};

/// How often the principal logged a catalog load.
fn loads(p: &Principal) -> usize {
    std::fs::read_to_string(&p.daemon.stderr)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("workflows loaded"))
        .count()
}

/// Watches `check` for `window`: it must hold the whole time. This observes an absence (no
/// reload while nothing changes), which no condition can signal.
fn holds_for(window: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(check(), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); the name (field 2) was cut off, so they are at 11 and 12.
    fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

fn workflow_ids(api: &Api) -> Vec<String> {
    match api.ask(ControlRequest::ListWorkflows) {
        Ok(ControlReply::Workflows { workflows, .. }) => {
            workflows.iter().map(|w| w.id.to_string()).collect()
        }
        other => panic!("workflows: {other:?}"),
    }
}

#[test]
fn reload_storm_a_nested_tree_loads_once_at_start_and_once_per_change() {
    let ws = Workspace::new();
    ws.write("wf/top.yml", &valid_workflow("Top"));
    ws.write("wf/etl/daily.yml", &valid_workflow("Daily"));
    ws.write("wf/legacy/old/job.yml", &valid_workflow("Job"));
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    assert_eq!(workflow_ids(&api).len(), 3);
    let pid = p.daemon.child.id();
    let ticks = cpu_ticks(pid);
    holds_for(Duration::from_secs(3), "one load while idle", || {
        loads(&p) == 1
    });
    let idle = cpu_ticks(pid) - ticks;
    eprintln!("idle principal used {idle} CPU ticks in 3 s");

    ws.write("wf/etl/hourly.yml", &valid_workflow("Hourly"));
    wait_for(Duration::from_secs(10), "etl.hourly to load", || {
        workflow_ids(&api)
            .contains(&"etl.hourly".to_owned())
            .then_some(())
    });
    holds_for(Duration::from_secs(3), "one more load per change", || {
        loads(&p) == 2
    });
}

#[test]
fn reload_rescan_catches_a_change_the_watch_cannot_see() {
    // A deployment that switches a symlink: the watch follows the old target, so only the
    // periodic rescan sees the new tree.
    let ws = Workspace::new();
    ws.write("releases/1/a.yml", &valid_workflow("A"));
    ws.write("releases/2/a.yml", &valid_workflow("A"));
    ws.write("releases/2/etl/b.yml", &valid_workflow("B"));
    std::os::unix::fs::symlink("releases/1", ws.path().join("wf")).unwrap();
    let p = Principal::start(&ws, &[], &[("CDKTR_PRINCIPAL_RESCAN_INTERVAL", "1s")]);
    let api = Api::connect(&p.api);
    assert_eq!(workflow_ids(&api), vec!["a".to_owned()]);
    // Rescans of an unchanged tree load nothing.
    holds_for(Duration::from_secs(3), "no load while unchanged", || {
        loads(&p) == 1
    });
    std::os::unix::fs::symlink("releases/2", ws.path().join("wf.next")).unwrap();
    std::fs::rename(ws.path().join("wf.next"), ws.path().join("wf")).unwrap();
    wait_for(Duration::from_secs(15), "etl.b to load", || {
        workflow_ids(&api)
            .contains(&"etl.b".to_owned())
            .then_some(())
    });
    assert_eq!(loads(&p), 2);
}

#[test]
fn serial_caught_up_skip_runs_stay_serial_after_a_restart() {
    let ws = Workspace::new();
    ws.write(
        "wf/job.yml",
        "name: job\ncron: \"* * * * * *\"\noverlap: skip\ncatchup: all\ntasks:\n  t: {name: T, config: !Shell {script: \"sleep 1\"}}\n",
    );
    // No agent: runs stay queued.
    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    wait_for(Duration::from_secs(20), "a fired slot", || {
        (!api.runs("job").is_empty()).then_some(())
    });
    p.daemon.signal(Signal::SIGTERM);
    assert!(p.daemon.wait_exit(Duration::from_secs(20)).success());
    // The scenario: the principal is down for three seconds, so slots are caught up.
    std::thread::sleep(Duration::from_secs(3));
    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    wait_for(Duration::from_secs(20), "caught-up runs queued", || {
        (api.runs("job").len() >= 3).then_some(())
    });
    // Restarted again: the queued caught-up runs are recovered from the store.
    p.daemon.signal(Signal::SIGTERM);
    assert!(p.daemon.wait_exit(Duration::from_secs(20)).success());
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let queued = api.runs("job").len();
    assert!(queued >= 3, "{queued} runs");
    let _agent = start_agent(&ws, &p.api, "wide", 8, &[]);
    wait_for(Duration::from_secs(60), "three finished runs", || {
        let done = api
            .runs("job")
            .iter()
            .filter(|r| r.finished_at.is_some())
            .count();
        (done >= 3).then_some(())
    });
    api.assert_runs_never_overlap("job");
}

#[test]
fn shutdown_delivers_a_trigger_ack_that_waits_for_the_store() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut p = Principal::start(&ws, &[], &[("CDKTR_FAILPOINTS", "1")]);
    let api = Api::connect(&p.api);
    let set = api.ask(ControlRequest::Failpoint {
        name: "store_stall".into(),
        duration_ms: 1500,
    });
    assert!(matches!(set, Ok(ControlReply::FailpointSet)), "{set:?}");
    let endpoint = p.api.clone();
    let trigger = std::thread::spawn(move || {
        Api::connect(&endpoint).ask(ControlRequest::Trigger {
            workflow: "hello".into(),
            params: Default::default(),
            trigger: None,
        })
    });
    // The run is queued in memory; its acknowledgement waits for the stalled store.
    wait_for(Duration::from_secs(10), "the run to be queued", || {
        (api.status().queue_length == 1).then_some(())
    });
    p.daemon.signal(Signal::SIGTERM);
    let reply = trigger.join().unwrap();
    let run_id = match reply {
        Ok(ControlReply::Triggered { run_id }) => run_id,
        other => panic!("the trigger was committed, so it must be acknowledged: {other:?}"),
    };
    assert!(p.daemon.wait_exit(Duration::from_secs(20)).success());
    let rows = crate::common::cluster::db_rows(
        &p.db,
        &format!("SELECT status FROM runs WHERE run_id = '{run_id}'"),
    );
    assert_eq!(rows, vec![vec!["QUEUED".to_owned()]]);
}

#[test]
fn wrap_out_of_range_numbers_from_the_network_are_rejected() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[("CDKTR_FAILPOINTS", "1")]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("hello");
    let huge = u64::MAX;
    let requests = [
        (
            "after",
            json!({"type": "logs", "run_id": run_id, "after": huge}),
        ),
        ("after", json!({"type": "query_logs", "after": huge})),
        (
            "duration_ms",
            json!({"type": "failpoint", "name": "store_writes", "duration_ms": huge}),
        ),
    ];
    for (field, request) in requests {
        let shown = request.to_string();
        let request: ControlRequest = serde_json::from_value(request).unwrap();
        let text = format!("{:?}", api.ask(request));
        assert!(
            text.contains("Invalid") && text.contains(&format!("`{field}`")),
            "{shown} -> {text}"
        );
    }
    // An agent's report with sequence numbers beyond what the store can hold.
    let agent = cdktr::protocol::Request::Agent(
        serde_json::from_value(json!({
            "type": "register",
            "agent": {"id": "a1", "name": "a1", "host": "h", "slots": 1, "version": "0", "instance": "i"},
            "running": []
        }))
        .unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = cdktr::transport::Client::connect(&p.api, Duration::from_secs(5));
        client.request(agent).await.unwrap();
        for (field, record) in [
            (
                "seq",
                json!({"run_id": run_id, "attempt": 1, "token": "t", "seq": huge, "ts": "2026-01-01T00:00:00Z",
                       "event": {"kind": "run_finished", "status": "COMPLETED"}}),
            ),
            (
                "line_no",
                json!({"run_id": run_id, "attempt": 1, "token": "t", "seq": 1, "ts": "2026-01-01T00:00:00Z",
                       "event": {"kind": "log", "task_id": "a", "stream": "stdout", "line_no": huge, "line": "x"}}),
            ),
        ] {
            let report = cdktr::protocol::Request::Agent(
                serde_json::from_value(json!({"type": "report", "agent_id": "a1", "records": [record]}))
                    .unwrap(),
            );
            let reply = client.request(report).await;
            let text = format!("{reply:?}");
            assert!(
                text.contains("Invalid") && text.contains(&format!("`{field}`")),
                "{text}"
            );
        }
    });
}
