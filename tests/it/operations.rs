//! Running the daemons as a service: agent shutdown modes, one principal per data directory,
//! `--daemon` with a pid file and a log file that logrotate can move, systemd's notifications
//! (status, reload, watchdog, stopping) on a real datagram socket, journald's line format, the
//! log level re-read on SIGHUP, and the Prometheus endpoint.

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdktr::model::RunStatus;
use cdktr::protocol::control::ControlRequest;
use nix::sys::signal::Signal;

use crate::common::cluster::{start_agent, wait_for, Api, Daemon, Principal};
use crate::common::{valid_workflow, Workspace};

const LONG: Duration = Duration::from_secs(30);

fn stderr_of(d: &Daemon) -> String {
    std::fs::read_to_string(&d.stderr).unwrap_or_default()
}

/// A principal command in `ws` on ephemeral ports, `wf` and `data` (not started).
fn principal_command(ws: &Workspace) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdktr-principal"));
    cmd.current_dir(ws.path())
        .env_remove("NOTIFY_SOCKET")
        .args(["--listen", "tcp://127.0.0.1:0"])
        .args(["--logs-publish", "tcp://127.0.0.1:0"])
        .args(["--workflow-dir", "wf", "--data-dir", "data"]);
    cmd
}

/// Runs `cmd` to its end, checks it exited with `code`; its stderr.
fn exits_with(mut cmd: Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

#[test]
fn a_draining_agent_lets_running_tasks_finish_and_takes_no_new_work() {
    let ws = Workspace::new();
    ws.write(
        "wf/slow.yml",
        "name: Slow\ntasks:\n  a: {name: A, config: !Shell {script: \"echo begun; sleep 5; echo finished\"}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let mut agent = start_agent(&ws, &p.api, "one", 2, &["--shutdown", "drain"]);
    let api = Api::connect(&p.api);
    let first = api.trigger("slow");
    wait_for(LONG, "the task to start", || {
        api.logs(&first)
            .iter()
            .any(|l| l.line == "begun")
            .then_some(())
    });
    agent.signal(Signal::SIGTERM);
    wait_for(LONG, "the agent to start draining", || {
        stderr_of(&agent).contains("draining").then_some(())
    });
    // A run triggered while the agent drains is not taken, though it has a free slot.
    let second = api.trigger("slow");
    assert_eq!(
        agent.wait_exit(LONG).code(),
        Some(0),
        "{}",
        stderr_of(&agent)
    );
    let detail = api.run(&first);
    assert_eq!(detail.summary.status, RunStatus::Completed);
    assert!(api.logs(&first).iter().any(|l| l.line == "finished"));
    // Never handed to the draining agent (attempts are counted from the first assignment; one
    // assigned to it and taken back would show attempt 1).
    let second = api.run(&second).summary;
    assert_eq!(second.status, RunStatus::Queued);
    assert_eq!((second.attempt, &second.agent), (0, &None), "{second:?}");
}

#[test]
fn a_draining_agent_cancels_what_still_runs_at_its_shutdown_timeout() {
    let ws = Workspace::new();
    ws.write(
        "wf/long.yml",
        "name: Long\ntasks:\n  a: {name: A, config: !Shell {script: \"echo begun; sleep 60\"}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let args = ["--shutdown", "drain", "--shutdown-timeout", "1s"];
    let mut agent = start_agent(&ws, &p.api, "one", 1, &args);
    let api = Api::connect(&p.api);
    let run = api.trigger("long");
    wait_for(LONG, "the task to start", || {
        api.logs(&run)
            .iter()
            .any(|l| l.line == "begun")
            .then_some(())
    });
    agent.signal(Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(LONG).code(),
        Some(0),
        "{}",
        stderr_of(&agent)
    );
    assert!(stderr_of(&agent).contains("cancelling them"));
    assert_eq!(api.run(&run).summary.status, RunStatus::Cancelled);
}

#[test]
fn shutdown_modes_are_checked() {
    let ws = Workspace::new();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_cdktr-agent"));
    agent.current_dir(ws.path()).args(["--shutdown", "pause"]);
    let stderr = exits_with(agent, 2);
    assert!(
        stderr.contains("agent.shutdown") && stderr.contains("drain or cancel"),
        "{stderr}"
    );
}

#[test]
fn a_second_principal_on_the_same_data_directory_is_refused_with_the_holders_pid() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[]);
    let stderr = exits_with(principal_command(&ws), 1);
    let pid = p.daemon.child.id().to_string();
    assert!(
        stderr.contains("another principal") && stderr.contains(&format!("pid {pid}")),
        "{stderr}"
    );
    // The first one is untouched: its control socket is still there and it answers.
    assert!(ws.path().join("data/control.sock").exists());
    assert_eq!(Api::connect(&p.api).status().workflows_loaded, 1);
}

/// Whether `pid` runs (a zombie no one has reaped yet has ended).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// Kills a detached daemon when the test ends, however it ends.
struct Detached(i32);

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn detached_principal(ws: &Workspace) -> std::process::Output {
    principal_command(ws)
        .env("CDKTR_LOG", "info")
        .args(["--daemon", "--pid-file", "run/p.pid", "--log-file", "p.log"])
        .output()
        .unwrap()
}

#[test]
fn daemon_mode_detaches_after_ready_writes_a_pid_file_and_reopens_its_log_on_sighup() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    std::fs::create_dir(ws.path().join("run")).unwrap();
    let out = detached_principal(&ws);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let pid: i32 = std::fs::read_to_string(ws.path().join("run/p.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Detached(pid);
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(alive(pid));
    // Detached: its own session, not a child of ours.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_ne!(fields[1], std::process::id().to_string(), "parent");
    assert_ne!(
        fields[3],
        nix::unistd::getsid(None).unwrap().to_string(),
        "session"
    );
    // It was ready when the command returned: the ready line is in the log and it answers.
    let log = std::fs::read_to_string(ws.path().join("p.log")).unwrap();
    let ready = log
        .lines()
        .find(|l| l.starts_with("cdktr-principal ready"))
        .unwrap_or_else(|| panic!("no ready line in the log:\n{log}"));
    let api = ready
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("api="))
        .unwrap();
    assert_eq!(Api::connect(api).status().workflows_loaded, 1);
    // logrotate moves the file away, then sends SIGHUP: the daemon writes to a new one.
    std::fs::rename(ws.path().join("p.log"), ws.path().join("p.log.1")).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    wait_for(LONG, "a new log file", || {
        std::fs::read_to_string(ws.path().join("p.log"))
            .ok()
            .filter(|l| l.contains("log file reopened"))
    });
    // A second one on the same data directory fails, in the foreground, with the reason.
    let again = detached_principal(&ws);
    let why = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{why}");
    assert!(
        why.contains("another principal") || why.contains("pid file"),
        "{why}"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_for(LONG, "the daemon to exit", || (!alive(pid)).then_some(()));
    assert!(
        !ws.path().join("run/p.pid").exists(),
        "the pid file is removed on exit"
    );
}

#[test]
fn daemon_mode_needs_a_log_file() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdktr-principal"));
    cmd.arg("--daemon");
    let stderr = exits_with(cmd, 2);
    assert!(stderr.contains("--log-file"), "{stderr}");
}

/// Every datagram the principal sends to a fake systemd, read on a thread.
struct Notifications {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Notifications {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a datagram that contains `part`; returns it.
    fn wait(&mut self, part: &str) -> String {
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    self.seen.push(m.clone());
                    if m.contains(part) {
                        return m;
                    }
                }
                Err(_) => panic!("no `{part}` notification; got {:?}", self.seen),
            }
        }
    }

    /// What arrived since the last call (without waiting).
    fn drain(&mut self) -> Vec<String> {
        let fresh: Vec<String> = self.rx.try_iter().collect();
        self.seen.extend(fresh.iter().cloned());
        fresh
    }
}

#[test]
fn systemd_hears_status_reloads_watchdog_pings_and_stopping_and_a_wedged_writer_stops_the_pings() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let socket = ws.path().join("notify.sock");
    let mut notes = Notifications::bind(&socket);
    let env = [
        ("NOTIFY_SOCKET", socket.to_str().unwrap()),
        // Probes every 2 s, each given 1 s: generous on a loaded test machine.
        ("WATCHDOG_USEC", "4000000"),
        ("CDKTR_FAILPOINTS", "1"),
    ];
    let mut p = Principal::start(&ws, &["--with-agent"], &env);
    notes.wait("READY=1");
    notes.wait("WATCHDOG=1");
    // The first status may come before the embedded agent registered: wait for one after.
    let status = notes.wait("agents 1/1");
    assert!(
        status.contains("STATUS=queue 0, running 0") && status.contains("store ok"),
        "{status}"
    );

    // A reload by signal is bracketed: RELOADING=1 with the monotonic time, then READY=1.
    ws.write("wf/second.yml", &valid_workflow("Second"));
    p.daemon.signal(Signal::SIGHUP);
    let reloading = notes.wait("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let reloaded = notes.wait("READY=1");
    assert!(reloaded.contains("2 workflows"), "{reloaded}");

    // A store refusing writes is degraded but alive: the pings go on.
    let api = Api::connect(&p.api);
    api.ask(ControlRequest::Failpoint {
        name: "store_writes".into(),
        duration_ms: 60_000,
    })
    .unwrap();
    api.trigger("hello");
    notes.wait("store degraded");
    notes.drain();
    notes.wait("WATCHDOG=1");

    // The writer thread itself stops: the probes go unanswered and the pings stop. (Counted
    // from here: a probe slowed by a loaded machine earlier does not count.)
    let count = |what: &str| stderr_of(&p.daemon).matches(what).count();
    let (missed, recovered) = (count("store writer"), count("every part answers again"));
    api.ask(ControlRequest::Failpoint {
        name: "store_wedge".into(),
        duration_ms: 12_000,
    })
    .unwrap();
    wait_for(LONG, "a first unanswered probe", || {
        (count("store writer") > missed).then_some(())
    });
    notes.drain();
    wait_for(LONG, "a second unanswered probe", || {
        (count("store writer") > missed + 1).then_some(())
    });
    // Between the two, no ping at all.
    let during = notes.drain();
    let pings = during.iter().filter(|m| m.contains("WATCHDOG=1")).count();
    assert_eq!(pings, 0, "pings while wedged: {during:?}");
    // When the writer wakes, the pings resume.
    wait_for(LONG, "the parts to answer again", || {
        (count("every part answers again") > recovered).then_some(())
    });
    notes.wait("WATCHDOG=1");

    p.daemon.signal(Signal::SIGTERM);
    notes.wait("STOPPING=1");
    assert_eq!(p.daemon.wait_exit(LONG).code(), Some(0));
}

#[test]
fn under_journald_lines_carry_a_syslog_priority_and_no_time() {
    use std::os::unix::fs::MetadataExt;
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    // The daemon's stderr file exists before it starts: its device and inode are the stream's.
    let stderr = ws.path().join("principal.stderr");
    std::fs::write(&stderr, "").unwrap();
    let meta = std::fs::metadata(&stderr).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let p = Principal::start(&ws, &[], &[("JOURNAL_STREAM", &stream)]);
    let log = stderr_of(&p.daemon);
    let first = log.lines().next().unwrap_or_default().to_owned();
    // `<6>` then the level: no time stamp before it (the journal adds its own).
    assert!(first.starts_with("<6> INFO cdktr::"), "{log}");
    assert!(!log.contains('\u{1b}'), "no colour: {log}");
    // Every line is one event: priority, level, component.
    for line in log.lines() {
        assert!(line.starts_with('<') && line.contains(" cdktr"), "{line}");
    }
}

#[test]
fn sighup_re_reads_the_log_level() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    ws.write("cdktr.toml", "[log]\nlevel = \"warn\"\n");
    let mut cmd = principal_command(&ws);
    cmd.env_remove("CDKTR_LOG");
    let p = Daemon::start(cmd, "cdktr-principal ready", ws.path().join("p.stderr"));
    let api = Api::connect(&p.field("api"));
    api.trigger("hello");
    assert!(!stderr_of(&p).contains("INFO"), "{}", stderr_of(&p));
    ws.write("cdktr.toml", "[log]\nlevel = \"debug\"\n");
    p.signal(Signal::SIGHUP);
    wait_for(LONG, "the new level", || {
        stderr_of(&p).contains("log level set").then_some(())
    });
    api.trigger("hello");
    wait_for(LONG, "debug lines", || {
        stderr_of(&p).contains("DEBUG").then_some(())
    });
}

/// `GET path` on `address`; the status code and the body.
fn http_get(address: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(LONG)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

/// Parses the text exposition format strictly: `# HELP`/`# TYPE` comments, `# EOF`, and
/// samples `name{label="value",...} number`. Returns the samples as (`name{labels}`, value).
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let kind = words.next().unwrap();
            let name = words
                .next()
                .unwrap_or_else(|| panic!("bad comment `{line}`"));
            assert!(kind == "HELP" || kind == "TYPE" || kind == "UNIT", "{line}");
            if kind == "TYPE" {
                let t = words.next().unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "unknown"].contains(&t),
                    "{line}"
                );
                typed.insert(name.to_owned());
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in `{line}`"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in `{line}`"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in `{line}`"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("bad labels in `{line}`"));
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').unwrap();
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
                }
            }
        }
        let family = ["_total", "_bucket", "_count", "_sum", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            typed.contains(family) || typed.contains(name),
            "untyped `{line}`"
        );
        samples.push((series.to_owned(), value));
    }
    assert!(text.trim_end().ends_with("# EOF"), "no # EOF");
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_as_runs_complete() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(
        &ws,
        &["--with-agent", "--metrics-listen", "127.0.0.1:0"],
        &[],
    );
    let address = p.daemon.field("metrics");
    let (code, body) = http_get(&address, "GET", "/metrics");
    assert_eq!(code, 200, "{body}");
    let before = parse_metrics(&body);
    assert_eq!(sample(&before, "cdktr_workflows{state=\"valid\"}"), 1.0);
    // The embedded agent registers just after the principal is ready.
    wait_for(LONG, "the agent in the metrics", || {
        let samples = parse_metrics(&http_get(&address, "GET", "/metrics").1);
        (sample(&samples, "cdktr_agents{state=\"alive\"}") == 1.0).then_some(())
    });
    assert_eq!(sample(&before, "cdktr_store_degraded"), 0.0);
    let api = Api::connect(&p.api);
    for _ in 0..3 {
        let run = api.trigger("hello");
        api.wait_done(&run, LONG);
    }
    let after = wait_for(LONG, "the runs in the metrics", || {
        let samples = parse_metrics(&http_get(&address, "GET", "/metrics").1);
        (sample(&samples, "cdktr_runs_ended_total{status=\"COMPLETED\"}") == 3.0).then_some(samples)
    });
    assert_eq!(sample(&after, "cdktr_trigger_to_start_seconds_count"), 3.0);
    assert!(sample(&after, "cdktr_log_lines_ingested_total") >= 3.0);
    assert!(sample(&after, "cdktr_store_write_seconds_count") >= 1.0);
    assert_eq!(sample(&after, "cdktr_queue_length"), 0.0);
    // Only GET /metrics.
    assert_eq!(http_get(&address, "GET", "/other").0, 404);
    assert_eq!(http_get(&address, "POST", "/metrics").0, 405);
}

#[test]
fn an_agent_serves_its_own_metrics_and_metrics_stay_on_loopback() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[]);
    let agent = start_agent(&ws, &p.api, "one", 3, &["--metrics-listen", "127.0.0.1:0"]);
    let address = agent.field("metrics");
    let samples = parse_metrics(&http_get(&address, "GET", "/metrics").1);
    assert_eq!(sample(&samples, "cdktr_agent_slots"), 3.0);
    assert_eq!(sample(&samples, "cdktr_agent_spool_depth"), 0.0);
    let mut open = principal_command(&ws);
    open.args(["--metrics-listen", "0.0.0.0:9464"]);
    let stderr = exits_with(open, 2);
    assert!(
        stderr.contains("metrics.listen") && stderr.contains("loopback"),
        "{stderr}"
    );
}

#[test]
fn after_a_principal_restart_agents_take_work_again_at_their_next_heartbeat() {
    // The agent's pull waiting at the old principal is never answered (it waits up to a
    // minute); once its heartbeat has registered it again, it pulls from the new one at once.
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut p = Principal::start(&ws, &[], &[]);
    let port = p.api.rsplit(':').next().unwrap().to_owned();
    let _agent = start_agent(&ws, &p.api, "one", 2, &["--heartbeat-interval", "300ms"]);
    let api = Api::connect(&p.api);
    api.wait_done(&api.trigger("hello"), LONG);
    p.daemon.child.kill().unwrap();
    p.daemon.child.wait().unwrap();
    let p = Principal::start_at(&ws, &format!("tcp://127.0.0.1:{port}"), &[], &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("hello");
    // Well under the minute a lost pull waits.
    let done = api.wait_done(&run, Duration::from_secs(20));
    assert_eq!(done.summary.status, RunStatus::Completed);
}
