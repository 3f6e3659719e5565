//! Daemon lifecycle: readiness (stdout line and sd-notify), SIGTERM exits 0 after flushing,
//! the CLI's exit code when the principal is unreachable.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::cluster::{agent_command, db_rows, start_agent, Api, Daemon, Principal};
use crate::common::{valid_workflow, Workspace};

#[test]
fn sigterm_stops_principal_and_agent_cleanly_with_exit_0() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut p = Principal::start(&ws, &[], &[]);
    let mut agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("hello");
    api.wait_done(&run, Duration::from_secs(30));
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)).code(), Some(0));
    p.daemon.signal(Signal::SIGTERM);
    assert_eq!(p.daemon.wait_exit(Duration::from_secs(30)).code(), Some(0));
    // The store was flushed and closed: another process can open it and finds the run.
    let rows = db_rows(
        &p.db,
        &format!("SELECT status FROM runs WHERE run_id = '{run}'"),
    );
    assert_eq!(rows, vec![vec!["COMPLETED".to_owned()]]);
}

#[test]
fn agent_shutdown_cancels_running_tasks_and_reports_them() {
    let ws = Workspace::new();
    ws.write(
        "wf/long.yml",
        "name: Long\ntasks:\n  nap: {name: Nap, config: !Shell {script: \"echo napping; sleep 30\"}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let mut agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("long");
    crate::common::cluster::wait_for(Duration::from_secs(30), "the task to print", || {
        api.logs(&run)
            .iter()
            .any(|l| l.line == "napping")
            .then_some(())
    });
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let detail = api.run(&run);
    assert_eq!(detail.summary.status, cdktr::model::RunStatus::Cancelled);
    assert_eq!(detail.tasks[0].status, cdktr::model::TaskStatus::Cancelled);
}

#[test]
fn cdktr_start_runs_the_daemon_binaries_in_its_place() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut cmd = ws.cdktr();
    cmd.args([
        "start",
        "principal",
        "--listen",
        "tcp://127.0.0.1:0",
        "--logs-publish",
        "tcp://127.0.0.1:0",
        "--workflow-dir",
        "wf",
        "--data-dir",
        "data",
        "--with-agent",
    ]);
    let mut p = Daemon::start(cmd, "cdktr-principal ready", ws.path().join("stderr"));
    p.wait_line("cdktr-agent ready", Duration::from_secs(30));
    // The process the test started is the principal itself (exec, not a child).
    let exe = std::fs::read_link(format!("/proc/{}/exe", p.child.id())).unwrap();
    assert!(exe.ends_with("cdktr-principal"), "{}", exe.display());
    let api = Api::connect(&p.field("api"));
    let run = api.trigger("hello");
    api.wait_done(&run, Duration::from_secs(30));
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait_exit(Duration::from_secs(30)).code(), Some(0));

    // Flags after `start agent` are the agent's own, --help included.
    let help = ws.run(&["start", "agent", "--help"]);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("cdktr-agent"), "{}", help.stdout);
    assert!(
        help.stdout.contains("--heartbeat-interval"),
        "{}",
        help.stdout
    );

    // A cdktr installed without the daemons says what is missing.
    let alone = ws.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_cdktr"), alone.join("cdktr")).unwrap();
    let out = std::process::Command::new(alone.join("cdktr"))
        .args(["start", "principal"])
        .env("PATH", &alone)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot run cdktr-principal"), "{stderr}");
}

#[test]
fn sd_notify_ready_is_sent_once_serving() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let socket_path = ws.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let p = Principal::start(
        &ws,
        &[],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // Ready means serving: a request is answered.
    assert_eq!(Api::connect(&p.api).status().workflows_loaded, 1);
}

#[test]
fn cli_reports_an_unreachable_principal_with_exit_3() {
    let ws = Workspace::new();
    let run = ws
        .cdktr()
        .args(["--principal", "tcp://127.0.0.1:9", "status"])
        .env("CDKTR_CLIENT_TIMEOUT", "300ms")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("cannot reach principal at tcp://127.0.0.1:9"),
        "{stderr}"
    );
}

#[test]
fn cli_run_wait_logs_and_runs_against_a_live_principal() {
    let ws = Workspace::new();
    ws.write(
        "wf/greet.yml",
        "name: Greet\nparams: {who: {description: whom to greet}}\ntasks:\n  \
         hi: {name: Hi, config: !Shell {script: \"echo hello $CDKTR_PARAM_WHO from {{ params.who }}\"}}\n  \
         bye: {name: Bye, depends: [hi], config: !Shell {script: \"echo bye >&2\"}}\n",
    );
    ws.write(
        "wf/fails.yml",
        "name: Fails\ntasks:\n  f: {name: F, config: !Shell {script: \"exit 4\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let cli = |args: &[&str]| {
        let mut full = vec!["--principal", p.api.as_str()];
        full.extend_from_slice(args);
        ws.run(&full)
    };
    let run = cli(&["run", "greet", "--wait", "--param", "who=world", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let detail = run.json();
    assert_eq!(detail["status"], "COMPLETED");
    assert_eq!(detail["trigger"], "cli");
    assert_eq!(detail["params"]["who"], "world");
    let run_id = detail["run_id"].as_str().unwrap().to_owned();
    assert!(detail["queued_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(detail["tasks"][0]["task_id"], "hi");
    assert_eq!(detail["tasks"][0]["exit_code"], 0);
    assert_eq!(detail["tasks"][0]["attempt"], 1);

    let logs = cli(&["logs", &run_id, "--json"]);
    let lines: Vec<serde_json::Value> = logs
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], "hello world from world");
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[1]["stream"], "stderr");
    let human = cli(&["logs", &run_id, "--task", "bye"]);
    assert!(
        human.stdout.contains("bye") && !human.stdout.contains("hello"),
        "{}",
        human.stdout
    );

    let failed = cli(&["run", "fails", "--wait"]);
    assert_eq!(failed.code, Some(1));
    assert!(failed.stdout.contains("FAILED"), "{}", failed.stdout);

    let list = cli(&["runs", "list", "--workflow", "greet", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let failed_only = cli(&["runs", "list", "--status", "failed", "--json"]).json();
    assert_eq!(failed_only[0]["workflow_id"], "fails");
    let agents = cli(&["agents", "list", "--json"]).json();
    assert_eq!(agents[0]["state"], "alive");
    let status = cli(&["status", "--json"]).json();
    assert_eq!(status["workflows_loaded"], 2);
    assert_eq!(status["store"], "ok");
    let workflows = cli(&["workflow", "list", "--json"]).json();
    assert_eq!(workflows.as_array().unwrap().len(), 2);
    let undeclared = cli(&["run", "greet", "--param", "who=x", "--param", "whom=y"]);
    assert_eq!(undeclared.code, Some(2));
    assert!(
        undeclared
            .stderr
            .contains("`whom` is not a parameter of workflow `greet` (declared: who)"),
        "{}",
        undeclared.stderr
    );
    let required = cli(&["run", "greet"]);
    assert_eq!(required.code, Some(2));
    assert!(
        required
            .stderr
            .contains("parameter `who` of workflow `greet` has no default"),
        "{}",
        required.stderr
    );
    let missing = cli(&["run", "nope"]);
    assert_eq!(missing.code, Some(4));
    assert!(
        missing.stderr.contains("no workflow `nope`"),
        "{}",
        missing.stderr
    );
    let query = cli(&[
        "logs",
        "query",
        "--workflow",
        "greet",
        "--since",
        "1h",
        "--json",
    ]);
    assert_eq!(query.stdout.lines().count(), 2, "{}", query.stdout);
}

#[test]
fn a_second_signal_forces_the_agent_out() {
    let ws = Workspace::new();
    ws.write(
        "wf/stubborn.yml",
        "name: Stubborn\ntasks:\n  hold: {name: Hold, config: !Shell {script: \"trap '' TERM; echo holding; sleep 20\"}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let mut agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("stubborn");
    crate::common::cluster::wait_for(Duration::from_secs(30), "the task to start", || {
        api.logs(&run)
            .iter()
            .any(|l| l.line == "holding")
            .then_some(())
    });
    agent.signal(Signal::SIGTERM);
    crate::common::cluster::wait_for(
        Duration::from_secs(10),
        "the agent to begin shutting down",
        || {
            std::fs::read_to_string(&agent.stderr)
                .unwrap_or_default()
                .contains("shutting down")
                .then_some(())
        },
    );
    // The task ignores SIGTERM, so a graceful stop would wait for the kill grace period and exit
    // 0; a second signal exits at once with 130.
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(30)).code(), Some(130));
}

#[test]
fn logs_follow_prints_everything_until_the_run_ends_and_tail_streams_live() {
    let ws = Workspace::new();
    ws.write(
        "wf/ticks.yml",
        "name: Ticks\ntasks:\n  tick: {name: Tick, config: !Shell {script: \"for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);

    // tail: start it, then trigger until a line arrives (subscriptions take a moment).
    let mut tail = ws
        .cdktr()
        .args([
            "--principal",
            &p.api,
            "logs",
            "tail",
            "--workflow",
            "ticks",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut tailed = None;
    for _ in 0..20 {
        let run = api.trigger("ticks");
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(3)) {
            tailed = Some((run, line));
            break;
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let (_, line) = tailed.expect("logs tail printed a line");
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["workflow_id"], "ticks");
    assert!(line["line"].as_str().unwrap().starts_with("tick "));

    // follow: from the start of a fresh run to its end, every line once, then exit 0.
    let run = api.trigger("ticks");
    let follow = ws.run(&["--principal", &p.api, "logs", &run, "--follow"]);
    assert_eq!(follow.code, Some(0), "{}", follow.stderr);
    let ticks: Vec<&str> = follow
        .stdout
        .lines()
        .map(|l| l.rsplit("| ").next().unwrap())
        .collect();
    assert_eq!(ticks, ["tick 1", "tick 2", "tick 3", "tick 4", "tick 5"]);
}

#[test]
fn the_data_directory_and_database_are_private_to_the_daemon_user() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut p = Principal::start(&ws, &[], &[]);
    assert_eq!(mode(&ws.path().join("data")), 0o700);
    assert_eq!(mode(&p.db), 0o600);
    p.daemon.signal(Signal::SIGTERM);
    assert!(p.daemon.wait_exit(Duration::from_secs(30)).success());
    // A database file left readable by others (an older version, a copy) is made private.
    std::fs::set_permissions(&p.db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = Principal::start(&ws, &[], &[]);
    assert_eq!(mode(&p.db), 0o600);
}

/// The `Umask:` line of `/proc/PID/status`.
fn umask_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Umask:").map(|v| v.trim().to_owned()))
        .unwrap()
}

/// The agent daemon creates its files with explicit modes and keeps the umask it was given:
/// its tasks inherit it (and start without a hook in the forked child, through posix_spawn).
#[test]
fn an_agent_daemon_and_its_tasks_keep_the_umask_it_was_started_with() {
    use std::os::unix::process::CommandExt;
    let ws = Workspace::new();
    ws.write(
        "wf/mask.yml",
        "name: Mask\ntasks:\n  a:\n    name: A\n    config: !Shell\n      script: umask\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let mut cmd = agent_command(&ws, &p.api, "masked", 1, &[]);
    // SAFETY: umask(2) only, in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
            Ok(())
        });
    }
    let agent = Daemon::start(cmd, "cdktr-agent ready", ws.path().join("agent.stderr"));
    assert_eq!(umask_of(&agent.child.id().to_string()), "0027");
    let api = Api::connect(&p.api);
    let run_id = api.trigger("mask");
    let done = api.wait_done(&run_id, Duration::from_secs(30));
    assert_eq!(done.summary.status, cdktr::model::RunStatus::Completed);
    let logs = ws.run(&["--principal", &p.api, "logs", &run_id]);
    assert!(logs.stdout.trim_end().ends_with("0027"), "{}", logs.stdout);
}

#[test]
fn the_principal_runs_with_umask_077_and_its_tasks_with_the_one_it_was_started_with() {
    let ws = Workspace::new();
    ws.write(
        "wf/mask.yml",
        "name: Mask\ntasks:\n  a:\n    name: A\n    config: !Shell\n      script: umask\n",
    );
    let mut p = Principal::start(&ws, &["--with-agent"], &[]);
    p.daemon
        .wait_line("cdktr-agent ready", Duration::from_secs(30));
    assert_eq!(umask_of(&p.daemon.child.id().to_string()), "0077");
    let api = crate::common::cluster::Api::connect(&p.api);
    let run_id = api.trigger("mask");
    let done = api.wait_done(&run_id, Duration::from_secs(30));
    assert_eq!(done.summary.status, cdktr::model::RunStatus::Completed);
    let logs = ws.run(&["--principal", &p.api, "logs", &run_id]);
    let ours = umask_of("self");
    assert!(
        logs.stdout.trim_end().ends_with(&ours),
        "{} vs {ours}",
        logs.stdout
    );
}
