//! The real `cdktr-tui` binary in a real terminal (tmux), against a real principal and
//! agent: an operator's round trip through the cockpit, keys only.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::cluster::{wait_for, wait_showing, Api, Principal};
use crate::common::Workspace;

struct Tmux(String);

impl Tmux {
    /// Starts `command` in a detached session of 120x40.
    fn start(ws: &Workspace, command: &str) -> Tmux {
        let session = Tmux(format!("cdktr-tui-{}", std::process::id()));
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session.0,
                "-x",
                "120",
                "-y",
                "40",
            ])
            .arg(command)
            .current_dir(ws.path())
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success());
        session
    }

    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends keys (tmux key names: `Enter`, `Escape`, `C-c`, or literal text with `-l`).
    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.0])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    fn text(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    /// Waits until the screen shows every one of `wanted`; returns the screen.
    fn wait(&self, wanted: &[&str], limit: Duration) -> String {
        wait_showing(limit, &format!("the screen to show {wanted:?}"), || {
            let screen = self.capture();
            match wanted.iter().all(|w| screen.contains(w)) {
                true => Ok(screen),
                false => Err(screen),
            }
        })
    }

    /// Waits until one line of the screen shows every one of `wanted`; returns that line.
    fn wait_line(&self, wanted: &[&str], limit: Duration) -> String {
        wait_showing(limit, &format!("a line showing {wanted:?}"), || {
            let screen = self.capture();
            let line = screen
                .lines()
                .find(|l| wanted.iter().all(|w| l.contains(w)));
            line.map(str::to_owned).ok_or(screen)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The principal's control request counters by type, from its metrics endpoint.
fn requests(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    let mut stream = std::net::TcpStream::connect(metrics).expect("metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("metrics request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("metrics reply");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cdktr_control_requests_total{request=\"")?;
            let (kind, value) = rest.split_once("\"} ")?;
            Some((kind.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

const GREET: &str = "name: Greet\nparams:\n  who: {description: whom to greet}\ntasks:\n  \
    say: {name: Say, config: !Shell {script: 'echo \"hello, $CDKTR_PARAM_WHO\"'}}\n";
const SLOW: &str =
    "name: Slow\ntasks:\n  wait: {name: Wait, config: !Shell {script: 'sleep 300'}}\n";
const NIGHTLY: &str = "name: Nightly\ncron: \"0 0 3 * * *\"\ntasks:\n  \
    t: {name: T, config: !Shell {script: 'true'}}\n";

#[test]
fn an_operator_works_through_the_cockpit_with_keys_only() {
    let ws = Workspace::new();
    ws.write("wf/greet.yml", GREET);
    ws.write("wf/slow.yml", SLOW);
    ws.write("wf/ops/nightly.yml", NIGHTLY);
    let principal_args = ["--with-agent", "--metrics-listen", "127.0.0.1:0"];
    let mut p = Principal::start(&ws, &principal_args, &[]);
    let api = Api::connect(&p.api);
    let tui = Tmux::start(
        &ws,
        &format!(
            "{} --principal {}; echo cockpit exited $?; stty -a | grep -o -- '-*icanon'; sleep 600",
            env!("CARGO_BIN_EXE_cdktr-tui"),
            p.api
        ),
    );
    let limit = Duration::from_secs(30);
    tui.wait(&["agents 1/1", "store ok"], limit);

    // Trigger greet with a parameter through the form.
    tui.keys(&["1"]);
    tui.wait(&["Workflows (3, 0 invalid)", "ops/"], limit);
    tui.keys(&["/"]);
    tui.text("greet");
    tui.keys(&["Enter", "r"]);
    tui.wait(&["trigger greet", "required"], limit);
    tui.text("operator");
    tui.keys(&["Enter"]);
    let screen = tui.wait(&["triggered greet: run "], limit);
    let run = screen
        .split("triggered greet: run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(run.len(), 26, "a run id in {screen}");

    // It completes in the runs view; its logs hold the line, and the search finds it.
    tui.keys(&["2"]);
    tui.wait_line(&["greet", &run, "COMPLETED"], limit);
    tui.keys(&["l"]);
    tui.wait(
        &[&format!("{run} (greet)"), "hello, operator", "ended"],
        limit,
    );
    tui.keys(&["/"]);
    tui.text("OPERATOR");
    tui.keys(&["Enter"]);
    tui.wait(&["/OPERATOR"], limit);
    assert_eq!(api.logs(&run).len(), 1);

    // Cancel a long run: it is the newest, at the top of the list.
    let slow = api.trigger("slow");
    tui.keys(&["Escape"]);
    tui.wait_line(&["slow", &slow, "RUNNING"], limit);
    tui.keys(&["g", "c"]);
    tui.wait(&[&format!("Cancel run {slow}? (y/n)")], limit);
    tui.keys(&["y"]);
    tui.wait_line(&["slow", &slow, "CANCELLED"], limit);
    api.wait_status(&slow, cdktr::model::RunStatus::Cancelled, limit);

    // Pause the schedule.
    tui.keys(&["5"]);
    tui.wait_line(&["ops.nightly", "0 0 3 * * *", "active"], limit);
    tui.keys(&["p"]);
    tui.wait(&["paused the schedule of ops.nightly"], limit);
    tui.wait_line(&["ops.nightly", "0 0 3 * * *", "paused"], limit);

    // Idle, the cockpit asks for the status about once a second and re-reads no list. Idle
    // first: the principal's change counter has stopped moving (the cancelled task's last
    // reports are in).
    wait_for(limit, "the principal to be idle", || {
        let before = api.status().changes;
        std::thread::sleep(Duration::from_millis(1500));
        (api.status().changes == before).then_some(())
    });
    let metrics = p.daemon.field("metrics");
    let before = requests(&metrics);
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let after = requests(&metrics);
    let delta = |kind: &str| after.get(kind).unwrap_or(&0.0) - before.get(kind).unwrap_or(&0.0);
    let total: f64 = after.values().sum::<f64>() - before.values().sum::<f64>();
    assert!(
        total <= 2.0 * window.as_secs_f64() && delta("status") >= 3.0,
        "requests in {window:?} idle: {before:?} -> {after:?}"
    );
    for list in [
        "list_runs",
        "list_workflows",
        "list_agents",
        "list_schedules",
    ] {
        assert_eq!(
            delta(list),
            0.0,
            "{list} re-read while idle: {before:?} -> {after:?}"
        );
    }

    // A stopped principal: the cockpit still answers keys.
    p.daemon.signal(Signal::SIGSTOP);
    tui.keys(&["?"]);
    tui.wait(&["keys of the schedules view"], limit);
    tui.keys(&["Escape"]);
    wait_for(limit, "the help to close", || {
        (!tui.capture().contains("keys of the schedules view")).then_some(())
    });
    p.daemon.signal(Signal::SIGCONT);

    // Killed and restarted on the same address: the view recovers by itself.
    let address = p.api.clone();
    p.daemon.signal(Signal::SIGKILL);
    p.daemon.wait_exit(limit);
    tui.wait(&["reconnecting ("], limit);
    let _restarted = Principal::start_at(&ws, &address, &principal_args, &[]);
    wait_for(limit, "the cockpit to reconnect", || {
        let s = tui.capture();
        let recovered = !s.contains("reconnecting") && s.contains("agents 1/1");
        (recovered
            && s.lines()
                .any(|l| l.contains("ops.nightly") && l.contains("paused")))
        .then_some(())
    });

    // q quits from a top-level view and the terminal is back in cooked mode.
    tui.keys(&["q"]);
    let screen = tui.wait(&["cockpit exited 0", "icanon"], limit);
    assert!(
        screen.lines().any(|l| l.trim() == "icanon"),
        "the terminal is left in raw mode:\n{screen}"
    );
}

#[test]
fn the_principal_keeps_its_recent_warnings_for_the_cockpit() {
    let ws = Workspace::new();
    ws.write("wf/greet.yml", GREET);
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let before = api.status().warnings;
    // An edit that breaks a loaded workflow is a warning (its last valid version stays).
    ws.write("wf/greet.yml", "name: Greet\ntasks: [not, a, map]\n");
    api.call(async |c| c.reload().await)
        .unwrap_or_else(|e| panic!("reload: {e}"));
    let status = api.status();
    assert!(status.warnings > before, "{status:?}");
    let notices = api
        .call(async |c| c.warnings(None).await)
        .unwrap_or_else(|e| panic!("warnings: {e}"));
    let notice = notices
        .iter()
        .find(|n| n.message.contains("keeping the last valid version"))
        .unwrap_or_else(|| panic!("{notices:?}"));
    assert_eq!(notice.level, "warn");
    assert!(notice.message.contains("workflow=greet"), "{notice:?}");
    assert_eq!(notices.last().map(|n| n.seq), Some(status.warnings));
    // The cursor: nothing after the newest.
    let after = api
        .call(async |c| c.warnings(Some(status.warnings)).await)
        .unwrap_or_else(|e| panic!("warnings: {e}"));
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn a_long_output_pages_back_from_its_end() {
    let ws = Workspace::new();
    ws.write(
        "wf/count.yml",
        "name: Count\ntasks:\n  t: {name: T, config: !Shell {script: 'seq 1 12000'}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("count");
    api.wait_done(&run, Duration::from_secs(60));
    let page = |before: Option<u64>| {
        api.call(async |c| c.logs_before(&run, before, 5000).await)
            .unwrap_or_else(|e| panic!("logs before {before:?}: {e}"))
    };
    let texts = |lines: &[cdktr::protocol::logs::LogLine]| -> Vec<String> {
        lines.iter().map(|l| l.line.clone()).collect()
    };
    let end = page(None);
    assert_eq!(end.len(), 5000);
    assert_eq!(texts(&end)[0], "7001");
    assert_eq!(
        texts(&end)[4999],
        "12000",
        "in id order, ending with the last line"
    );
    let before = page(end.first().map(|l| l.id));
    assert_eq!((texts(&before)[0].as_str(), before.len()), ("2001", 5000));
    let start = page(before.first().map(|l| l.id));
    assert_eq!((texts(&start)[0].as_str(), start.len()), ("1", 2000));
    assert!(page(start.first().map(|l| l.id)).is_empty());
    // A cursor DuckDB cannot hold is refused with the field named.
    let refused = api.ask(cdktr::protocol::control::ControlRequest::Logs {
        run_id: run.clone(),
        task: None,
        after: None,
        before: Some(u64::MAX),
        limit: None,
        try_no: None,
        stream: None,
        grep: None,
        since: None,
        until: None,
    });
    let error = format!("{:?}", refused.expect_err("an out-of-range cursor"));
    assert!(error.contains("before"), "{error}");
}
