//! Crashes with real processes: kill -9 of the principal with runs queued and with runs
//! executing. Nothing triggered is lost, nothing runs twice, every log line is stored once.

use std::collections::BTreeSet;
use std::time::Duration;

use cdktr::model::RunStatus;

use crate::common::cluster::{db_rows, start_agent, wait_for, Api, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(120);

fn kill9(p: &mut Principal) {
    p.daemon.child.kill().unwrap();
    p.daemon.child.wait().unwrap();
}

fn port_of(endpoint: &str) -> String {
    endpoint.rsplit(':').next().unwrap().to_owned()
}

#[test]
fn a_thousand_queued_runs_survive_kill_9_and_each_runs_exactly_once() {
    const RUNS: usize = 1000;
    let ws = Workspace::new();
    ws.write("wf/job.yml", "name: Job\ntasks:\n  t: {name: T, config: !Shell {script: \"echo $CDKTR_RUN_ID >> done.txt\"}}\n");
    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let ids: BTreeSet<String> = (0..RUNS).map(|_| api.trigger("job")).collect();
    assert_eq!(ids.len(), RUNS);
    assert_eq!(api.status().queue_length, RUNS);
    kill9(&mut p);

    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    assert_eq!(
        api.status().queue_length,
        RUNS,
        "every acknowledged trigger came back"
    );
    let _a = start_agent(&ws, &p.api, "a", 8, &[]);
    let _b = start_agent(&ws, &p.api, "b", 8, &[]);
    wait_for(LONG, "all runs to finish", || {
        let s = api.status();
        (s.queue_length == 0 && s.runs_active == 0).then_some(())
    });
    p.daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(p.daemon.wait_exit(LONG).success());

    let done: Vec<String> = std::fs::read_to_string(ws.path().join("done.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(done.len(), RUNS, "each run executed once");
    assert_eq!(done.iter().cloned().collect::<BTreeSet<_>>(), ids);
    let count = |sql: &str| db_rows(&p.db, sql)[0][0].clone();
    assert_eq!(
        count("SELECT count(*) FROM runs WHERE status = 'COMPLETED'"),
        RUNS.to_string()
    );
    assert_eq!(
        count("SELECT count(*) FROM transitions WHERE task_id IS NULL AND status = 'RUNNING'"),
        RUNS.to_string(),
        "each run started once"
    );
}

#[test]
fn runs_executing_through_a_principal_kill_9_finish_with_their_full_logs() {
    const LINES: u64 = 60;
    let ws = Workspace::new();
    ws.write(
        "wf/count.yml",
        &format!(
            "name: Count\ntasks:\n  c: {{name: C, config: !Shell {{script: \"i=1; while [ $i -le {LINES} ]; do echo line $i; sleep 0.05; i=$((i+1)); done\"}}}}\n"
        ),
    );
    let mut p = Principal::start(&ws, &[], &[]);
    let port = port_of(&p.api);
    let _agent = start_agent(&ws, &p.api, "steady", 4, &["--heartbeat-interval", "200ms"]);
    let api = Api::connect(&p.api);
    let runs: Vec<String> = (0..3).map(|_| api.trigger("count")).collect();
    wait_for(LONG, "output from every run", || {
        runs.iter().all(|r| api.logs(r).len() >= 5).then_some(())
    });
    kill9(&mut p);

    let listen = format!("tcp://127.0.0.1:{port}");
    let p = Principal::start_at(&ws, &listen, &[], &[]);
    let api = Api::connect(&p.api);
    for run_id in &runs {
        let run = api.wait_done(run_id, LONG);
        assert_eq!(run.summary.status, RunStatus::Completed, "{run:#?}");
        assert_eq!(run.summary.attempt, 1, "the same attempt went on");
        let lines = api.logs(run_id);
        let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
        assert_eq!(
            seqs,
            (1..=LINES).collect::<Vec<_>>(),
            "every line once, in order"
        );
        assert!(lines.iter().all(|l| l.line == format!("line {}", l.seq)));
    }
}

#[test]
fn ten_seconds_of_store_failures_lose_nothing_and_dispatch_goes_on() {
    use cdktr::protocol::control::{ControlReply, ControlRequest};
    const LINES: u64 = 20;
    let ws = Workspace::new();
    ws.write(
        "wf/work.yml",
        &format!("name: Work\ntasks:\n  w: {{name: W, config: !Shell {{script: \"for i in $(seq 1 {LINES}); do echo line $i; done\"}}}}\n"),
    );
    let p = Principal::start(&ws, &["--with-agent"], &[("CDKTR_FAILPOINTS", "1")]);
    let api = Api::connect(&p.api);
    let set = api.ask(ControlRequest::Failpoint {
        name: "store_writes".into(),
        duration_ms: 10_000,
    });
    assert!(matches!(set, Ok(ControlReply::FailpointSet)), "{set:?}");
    // Triggers are acknowledged (journaled) and runs are dispatched and executed meanwhile.
    let runs: Vec<String> = (0..5).map(|_| api.trigger("work")).collect();
    let degraded = api.status().store;
    assert!(degraded.starts_with("degraded:"), "{degraded}");
    wait_for(
        Duration::from_secs(5),
        "the runs to execute during the outage",
        || (api.status().queue_length == 0).then_some(()),
    );
    wait_for(LONG, "the store to recover", || {
        (api.status().store == "ok").then_some(())
    });
    for run_id in &runs {
        let run = api.wait_done(run_id, LONG);
        assert_eq!(run.summary.status, RunStatus::Completed);
        let seqs: Vec<u64> = api.logs(run_id).iter().map(|l| l.seq).collect();
        assert_eq!(
            seqs,
            (1..=LINES).collect::<Vec<_>>(),
            "every line once, in order"
        );
    }
}

#[test]
fn failpoints_are_refused_unless_enabled() {
    use cdktr::protocol::control::ControlRequest;
    let ws = Workspace::new();
    ws.write(
        "wf/x.yml",
        "name: X\ntasks:\n  a: {name: A, config: !Shell {script: \"true\"}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let refused = api.ask(ControlRequest::Failpoint {
        name: "store_writes".into(),
        duration_ms: 1,
    });
    assert!(
        format!("{refused:?}").contains("failpoints are disabled"),
        "{refused:?}"
    );
}

/// A TCP proxy whose traffic can be blackholed: connections stay open, bytes vanish.
struct Proxy {
    address: String,
    blackhole: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    fn start(target: &str) -> Proxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let target = target.trim_start_matches("tcp://").to_owned();
        let blackhole = Arc::new(AtomicBool::new(false));
        let flag = blackhole.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => {
                                    let _ = to.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                Ok(n) if !flag.load(Ordering::SeqCst) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Ok(_) => {} // blackholed
                            }
                        }
                    });
                }
            }
        });
        Proxy { address, blackhole }
    }

    fn set_blackhole(&self, on: bool) {
        self.blackhole
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_ten_second_partition_loses_no_line_and_duplicates_none() {
    const LINES: u64 = 1500; // one every 10 ms: 15 s of output
    let ws = Workspace::new();
    ws.write(
        "wf/ticker.yml",
        &format!(
            "name: Ticker\ntasks:\n  t: {{name: T, config: !Shell {{script: \"i=1; while [ $i -le {LINES} ]; do echo line $i; sleep 0.01; i=$((i+1)); done\"}}}}\n"
        ),
    );
    let p = Principal::start(&ws, &[], &[]);
    let proxy = Proxy::start(&p.api);
    let via_proxy = format!("tcp://{}", proxy.address);
    // A small memory budget, so the records of the partition spill to the agent's spool file.
    ws.write(
        "cdktr.toml",
        "[agent]\nmax_buffered_records = 100\ndata_dir = \"agent-data\"\n",
    );
    let _agent = start_agent(
        &ws,
        &via_proxy,
        "far",
        1,
        &["--heartbeat-interval", "200ms"],
    );
    let api = Api::connect(&p.api);
    let run_id = api.trigger("ticker");
    wait_for(LONG, "the first lines", || {
        (api.logs(&run_id).len() >= 50).then_some(())
    });
    proxy.set_blackhole(true);
    let stored_at_cut = api.logs(&run_id).len();
    let spool_dir = ws.path().join("agent-data");
    let spilled = wait_for(
        Duration::from_secs(8),
        "records to spill to the spool file",
        || {
            std::fs::read_dir(&spool_dir)
                .ok()?
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("spool-"))
                .map(|e| e.path())
        },
    );
    // The partition itself lasts ten seconds.
    std::thread::sleep(Duration::from_secs(10));
    let stored_during = api.logs(&run_id).len();
    assert!(
        stored_during <= stored_at_cut + 200,
        "nothing (beyond what was in flight) crossed the partition"
    );
    proxy.set_blackhole(false);
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Completed, "{run:#?}");
    assert_eq!(run.summary.attempt, 1);
    let lines = api.logs(&run_id);
    let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=LINES).collect::<Vec<_>>(),
        "every line exactly once, in order"
    );
    assert!(lines.iter().all(|l| l.line == format!("line {}", l.seq)));
    wait_for(
        Duration::from_secs(10),
        "the drained spool file to be removed",
        || (!spilled.exists()).then_some(()),
    );
}

#[test]
fn a_panic_in_the_coordinator_is_contained_and_the_principal_keeps_working() {
    use cdktr::protocol::control::{ControlReply, ControlRequest};
    let ws = Workspace::new();
    ws.write(
        "wf/x.yml",
        "name: X\ntasks:\n  a: {name: A, config: !Shell {script: \"echo ok\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[("CDKTR_FAILPOINTS", "1")]);
    let api = Api::connect(&p.api);
    let set = api.ask(ControlRequest::Failpoint {
        name: "core_panic".into(),
        duration_ms: 0,
    });
    assert!(matches!(set, Ok(ControlReply::FailpointSet)), "{set:?}");
    // The request that meets the panic fails; the coordinator goes on.
    assert!(api.ask(ControlRequest::Status).is_err());
    let run = api.trigger("x");
    assert_eq!(
        api.wait_done(&run, LONG).summary.status,
        RunStatus::Completed
    );
    let stderr = std::fs::read_to_string(&p.daemon.stderr).unwrap();
    assert!(
        stderr.contains("contained a failure") && stderr.contains("coordinator"),
        "{stderr}"
    );
}
