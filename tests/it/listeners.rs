//! Event listeners trigger real runs with parameters: the HTTP webhook, file arrival, and the
//! Python example client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use cdktr::model::RunStatus;

use crate::common::cluster::{wait_for, Api, Daemon, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(60);

/// A minimal HTTP/1.1 POST; returns the status code and body.
fn post(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(address).expect("connect to the webhook");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status: u16 = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Whether python3 with pyzmq (and CURVE) is here; CI installs it and sets
/// CDKTR_REQUIRE_PYZMQ, so there a missing pyzmq fails instead of skipping.
fn has_pyzmq() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import zmq; assert zmq.has('curve')"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CDKTR_REQUIRE_PYZMQ").is_none(),
            "pyzmq (with CURVE) is required here but missing"
        );
        eprintln!("SKIPPED: python3 with pyzmq is not installed (pip install pyzmq)");
    }
    found
}

fn listener(ws: &Workspace, api: &str, args: &[&str], name: &str) -> Daemon {
    let mut cmd = ws.cdktr();
    cmd.args(["--principal", api, "listen"]).args(args);
    Daemon::start(
        cmd,
        &format!("cdktr listen {} ready", args[0]),
        ws.path().join(format!("{name}.stderr")),
    )
}

#[test]
fn webhook_triggers_runs_with_parameters_and_checks_the_token() {
    let ws = Workspace::new();
    ws.write(
        "wf/greet.yml",
        "name: Greet\nparams: {who: {}, times: \"1\"}\ntasks:\n  hi: {name: Hi, config: !Shell {script: \"echo hello {{ params.who }} x{{ params.times }}\"}}\n",
    );
    ws.write("token", "s3cret\n");
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let hook = listener(
        &ws,
        &p.api,
        &["webhook", "--bind", "127.0.0.1:0", "--token-file", "token"],
        "webhook",
    );
    let address = hook.field("address");
    let auth = [("Authorization", "Bearer s3cret")];

    assert_eq!(
        post(&address, "/trigger/greet", &[], r#"{"who":"x"}"#).0,
        401
    );
    assert_eq!(
        post(
            &address,
            "/trigger/greet",
            &[("Authorization", "Bearer nope")],
            "{}"
        )
        .0,
        401
    );
    assert_eq!(post(&address, "/elsewhere", &auth, "{}").0, 404);
    let (status, body) = post(&address, "/trigger/gret", &auth, "{}");
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did you mean `greet`?"),
        "{body}"
    );
    let (status, body) = post(
        &address,
        "/trigger/greet",
        &auth,
        r#"{"who":"x","whom":"y"}"#,
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`whom` is not a parameter"),
        "{body}"
    );
    assert_eq!(post(&address, "/trigger/greet", &auth, "not json").0, 400);

    let (status, body) = post(
        &address,
        "/trigger/greet",
        &[("X-Cdktr-Token", "s3cret")],
        r#"{"who":"webhook","times":3}"#,
    );
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().unwrap().to_owned();
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert_eq!(run.summary.trigger, "event:webhook");
    assert_eq!(run.params["who"], "webhook");
    assert_eq!(api.logs(&run_id)[0].line, "hello webhook x3");
}

#[test]
fn webhook_refuses_to_start_without_a_token_or_with_one_on_the_command_line() {
    let ws = Workspace::new();
    let out = ws.run(&["listen", "webhook", "--bind", "127.0.0.1:0"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("needs a shared token"),
        "{}",
        out.stderr
    );
    let out = ws.run(&[
        "listen",
        "webhook",
        "--bind",
        "127.0.0.1:0",
        "--token",
        "s3cret",
    ]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("`ps` shows it"), "{}", out.stderr);
    ws.write("empty", "\n");
    let out = ws.run(&["listen", "webhook", "--token-file", "empty"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("token is empty"), "{}", out.stderr);
}

/// Sends raw bytes and returns the status of whatever answer comes (0 for none).
fn raw_status(address: &str, bytes: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(address).expect("connect to the webhook");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    // The server may close before taking everything: a refused write is an answer too.
    let _ = stream.write_all(bytes);
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn hostile_http_requests_are_refused_and_the_webhook_keeps_serving() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &crate::common::valid_workflow("Hello"));
    ws.write("token", "s3cret\n");
    let p = Principal::start(&ws, &[], &[]);
    let hook = listener(
        &ws,
        &p.api,
        &["webhook", "--bind", "127.0.0.1:0", "--token-file", "token"],
        "webhook",
    );
    let address = hook.field("address");
    let huge = "POST /trigger/hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n";
    // Unauthenticated and authenticated, a body claiming 1 TiB is refused before any read.
    assert_eq!(raw_status(&address, huge.as_bytes()), 401);
    let with_token = huge.replace("\r\n\r\n", "\r\nAuthorization: Bearer s3cret\r\n\r\n");
    assert_eq!(raw_status(&address, with_token.as_bytes()), 413);
    // A chunked body that keeps coming is cut off at the limit.
    let mut chunked = b"POST /trigger/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
        chunked.extend(std::iter::repeat_n(b'{', 65536));
        chunked.extend_from_slice(b"\r\n");
    }
    assert_eq!(raw_status(&address, &chunked), 413);
    // Garbage instead of HTTP, and a bare connection that sends nothing, change nothing.
    assert_eq!(raw_status(&address, b"\x00\xff garbage\r\n\r\n"), 400);
    let _idle = TcpStream::connect(&address).unwrap();
    // The listener still answers a valid request at once.
    let (status, body) = post(
        &address,
        "/trigger/hello",
        &[("Authorization", "Bearer s3cret")],
        "{}",
    );
    assert_eq!(status, 202, "{body}");
}

/// A principal with an agent, an `ingest` workflow counting the lines of `{{ params.file }}`,
/// and a file listener on `inbox/*.csv` triggering it.
fn ingest_setup(ws: &Workspace) -> (Principal, Api, Daemon) {
    ws.write(
        "wf/ingest.yml",
        "name: Ingest\nparams: {file: {description: the arrived file}}\ntasks:\n  load: {name: Load, config: !Shell {script: \"wc -l < {{ params.file }}\"}}\n",
    );
    std::fs::create_dir(ws.path().join("inbox")).unwrap();
    let p = Principal::start(ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let args = [
        "files",
        "--dir",
        "inbox",
        "--pattern",
        "*.csv",
        "--workflow",
        "ingest",
    ];
    let watcher = listener(ws, &p.api, &args, "files");
    (p, api, watcher)
}

#[test]
fn arriving_files_trigger_a_run_each_with_their_path() {
    let ws = Workspace::new();
    let (_p, api, watcher) = ingest_setup(&ws);
    ws.write("inbox/notes.txt", "ignored\n");
    // Written elsewhere and moved in, as well-behaved producers do.
    ws.write("staging.csv", "a\nb\nc\n");
    std::fs::rename(
        ws.path().join("staging.csv"),
        ws.path().join("inbox/data.csv"),
    )
    .unwrap();
    ws.write("inbox/second.csv", "x\n");
    let runs = wait_for(LONG, "two runs of ingest", || {
        let runs = api.runs("ingest");
        (runs.len() >= 2).then_some(runs)
    });
    let mut files = Vec::new();
    for r in &runs {
        let run = api.wait_done(r.run_id.as_str(), LONG);
        assert_eq!(run.summary.status, RunStatus::Completed);
        assert_eq!(run.summary.trigger, "event:files");
        files.push(run.params["file"].clone());
    }
    files.sort();
    let inbox = std::fs::canonicalize(ws.path().join("inbox")).unwrap();
    assert_eq!(
        files,
        [
            inbox.join("data.csv").display().to_string(),
            inbox.join("second.csv").display().to_string()
        ]
    );
    assert_eq!(
        runs.len(),
        2,
        "notes.txt does not match and each file triggers once"
    );

    // Removed and dropped in again (a recurring export): it triggers again. The re-arrival is
    // written once the listener has seen the removal, or the two would fold into one change
    // of a file that is still there.
    std::fs::remove_file(ws.path().join("inbox/data.csv")).unwrap();
    wait_for(LONG, "the listener to see data.csv leave", || {
        let log = std::fs::read_to_string(&watcher.stderr).ok()?;
        log.lines()
            .any(|l| l.contains("file left") && l.contains("data.csv"))
            .then_some(())
    });
    ws.write("inbox/data.csv", "d\n");
    wait_for(LONG, "a third run for the re-arrived file", || {
        (api.runs("ingest").len() == 3).then_some(())
    });
}

#[test]
fn python_example_client_triggers_a_run() {
    if !has_pyzmq() {
        return;
    }
    let ws = Workspace::new();
    ws.write(
        "wf/hello.yml",
        "name: Hello\nparams: {who: world}\ntasks:\n  a: {name: A, config: !Shell {script: \"echo hi {{ params.who }}\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/trigger.py");
    let out = Command::new("python3")
        .args([
            script,
            "--principal",
            &p.api,
            "--workflow",
            "hello",
            "--param",
            "who=python",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let api = Api::connect(&p.api);
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.trigger, "event:python");
    assert_eq!(api.logs(&run_id)[0].line, "hi python");
    let bad = Command::new("python3")
        .args([script, "--principal", &p.api, "--workflow", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no workflow `nope`"));
}

#[test]
fn a_file_named_like_a_command_is_passed_as_its_name_and_runs_nothing() {
    let ws = Workspace::new();
    let (_p, api, _watcher) = ingest_setup(&ws);
    ws.write("staging.csv", "a\nb\n");
    let hostile = "$(touch PWNED) `touch PWNED`.csv";
    std::fs::rename(
        ws.path().join("staging.csv"),
        ws.path().join("inbox").join(hostile),
    )
    .unwrap();
    let runs = wait_for(LONG, "a run of ingest", || {
        let runs = api.runs("ingest");
        (!runs.is_empty()).then_some(runs)
    });
    let run = api.wait_done(runs[0].run_id.as_str(), LONG);
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert!(run.params["file"].ends_with(hostile), "{:?}", run.params);
    let printed: Vec<String> = api
        .logs(runs[0].run_id.as_str())
        .into_iter()
        .map(|l| l.line.trim().to_owned())
        .collect();
    assert_eq!(printed, vec!["2"]);
    for dir in [ws.path().to_path_buf(), ws.path().join("inbox")] {
        assert!(!dir.join("PWNED").exists(), "a file name was executed");
    }
}

#[test]
fn python_example_client_triggers_a_run_with_a_trigger_credential() {
    if !has_pyzmq() {
        return;
    }
    let ws = Workspace::new();
    ws.write(
        "cdktr.toml",
        "[principal]\ndata_dir = \"data\"\n[auth]\nkeys = \"keys\"\n",
    );
    ws.write("wf/hello.yml", &crate::common::valid_workflow("Hello"));
    let made = ws.run(&[
        "keys",
        "new",
        "hook",
        "--role",
        "trigger",
        "--out",
        "hook.cred",
    ]);
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let p = Principal::start(&ws, &[], &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/trigger.py");
    let run = |extra: &[&str]| {
        Command::new("python3")
            .args([
                script,
                "--principal",
                &p.api,
                "--workflow",
                "hello",
                "--timeout",
                "3",
            ])
            .args(extra)
            .current_dir(ws.path())
            .output()
            .unwrap()
    };
    // Without the credential the principal does not answer at all.
    assert_eq!(run(&[]).status.code(), Some(2));
    let out = run(&["--credential", "hook.cred"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(run_id.len(), 26, "a run id: {run_id}");
}
