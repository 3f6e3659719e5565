//! Real daemons for tests: a principal on ephemeral ports with a DuckDB file in the temp
//! workspace, agents connected to it, and a typed client. Everything waits on conditions with
//! deadlines, never on fixed sleeps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cdktr::model::RunStatus;
use cdktr::protocol::control::{
    AgentView, ControlReply, ControlRequest, RunDetail, RunSummary, StatusView,
};
use cdktr::protocol::logs::LogLine;
use cdktr::transport::{Client, ClientError, LogQuery};

use super::Workspace;

/// Polls `check` until it returns Some, or panics with `what` after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    wait_showing(limit, what, || check().ok_or_else(String::new))
}

/// Polls `check` until it returns Ok, or panics after `limit` with `what` and what the last
/// check saw (its Err).
pub fn wait_showing<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let seen = match check() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}{}{seen}",
            if seen.is_empty() {
                ""
            } else {
                "; last seen:\n"
            }
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A daemon process; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub ready: String,
    pub stderr: PathBuf,
    lines: mpsc::Receiver<String>,
    /// Every stdout line received so far, so lines can be waited for in any order.
    seen: Vec<String>,
}

impl Daemon {
    /// Starts `cmd` and waits for a stdout line starting with `ready_prefix`.
    pub fn start(mut cmd: Command, ready_prefix: &str, stderr: PathBuf) -> Daemon {
        let log = std::fs::File::create(&stderr).expect("stderr file");
        cmd.stdout(Stdio::piped()).stderr(log).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn daemon");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            child,
            ready: String::new(),
            stderr,
            lines,
            seen: Vec::new(),
        };
        daemon.ready = daemon.wait_line(ready_prefix, Duration::from_secs(60));
        daemon
    }

    /// Waits for a stdout line starting with `prefix` (or finds one already received).
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return line.clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no `{prefix}` line within {limit:?}; stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                ),
            }
        }
    }

    /// The value of `key=` in the ready line.
    pub fn field(&self, key: &str) -> String {
        self.ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in `{}`", self.ready))
            .to_owned()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal daemon");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_for(limit, "the daemon to exit", || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Principal {
    pub daemon: Daemon,
    pub api: String,
    pub db: PathBuf,
}

impl Principal {
    /// Starts `cdktr-principal` on ephemeral ports with `ws/wf` as workflow directory and
    /// `ws/data` as data directory.
    pub fn start(ws: &Workspace, extra: &[&str], env: &[(&str, &str)]) -> Principal {
        Principal::start_at(ws, "tcp://127.0.0.1:0", extra, env)
    }

    /// The same, on a given API endpoint (a restart where agents expect it).
    pub fn start_at(
        ws: &Workspace,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Principal {
        let mut cmd = daemon_command(ws, env!("CARGO_BIN_EXE_cdktr-principal"));
        cmd.args([
            "--listen",
            listen,
            "--logs-publish",
            "tcp://127.0.0.1:0",
            "--workflow-dir",
            "wf",
            "--data-dir",
            "data",
        ])
        .args(extra)
        .envs(env.iter().copied());
        let daemon = Daemon::start(
            cmd,
            "cdktr-principal ready",
            ws.path().join("principal.stderr"),
        );
        let api = daemon.field("api");
        Principal {
            daemon,
            api,
            db: ws.path().join("data/cdktr.duckdb"),
        }
    }
}

/// Starts `cdktr-agent` named `name` with `slots` slots, connected to `api`.
pub fn start_agent(ws: &Workspace, api: &str, name: &str, slots: u32, extra: &[&str]) -> Daemon {
    Daemon::start(
        agent_command(ws, api, name, slots, extra),
        "cdktr-agent ready",
        ws.path().join(format!("agent-{name}.stderr")),
    )
}

/// The command [`start_agent`] runs, to adjust before starting it.
pub fn agent_command(ws: &Workspace, api: &str, name: &str, slots: u32, extra: &[&str]) -> Command {
    let mut cmd = daemon_command(ws, env!("CARGO_BIN_EXE_cdktr-agent"));
    cmd.args([
        "--principal",
        api,
        "--name",
        name,
        "--max-concurrent-workflows",
        &slots.to_string(),
    ])
    .args(extra);
    cmd
}

fn daemon_command(ws: &Workspace, bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(ws.path())
        .env("CDKTR_LOG", "info,cdktr=debug");
    for (key, _) in std::env::vars() {
        if key.starts_with("CDKTR_") || key == "NOTIFY_SOCKET" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A typed control client with its own runtime, for synchronous tests.
pub struct Api {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Api {
    pub fn connect(endpoint: &str) -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async { Client::connect(endpoint, Duration::from_secs(10)) });
        Api { rt, client }
    }

    pub fn ask(&self, request: ControlRequest) -> Result<ControlReply, ClientError> {
        self.rt.block_on(self.client.control(request))
    }

    /// Runs `call` with the client on this Api's runtime.
    pub fn call<T>(&self, call: impl AsyncFnOnce(&Client) -> T) -> T {
        self.rt.block_on(call(&self.client))
    }

    pub fn trigger(&self, workflow: &str) -> String {
        self.call(async |c| c.trigger(workflow, Default::default(), "api").await)
            .unwrap_or_else(|e| panic!("trigger {workflow}: {e}"))
            .to_string()
    }

    pub fn run(&self, run_id: &str) -> RunDetail {
        self.call(async |c| c.run(run_id).await)
            .unwrap_or_else(|e| panic!("show {run_id}: {e}"))
    }

    /// Waits for the run to reach a terminal status.
    pub fn wait_done(&self, run_id: &str, limit: Duration) -> RunDetail {
        wait_for(limit, &format!("run {run_id} to finish"), || {
            let run = self.run(run_id);
            run.summary.status.is_terminal().then_some(run)
        })
    }

    pub fn wait_status(&self, run_id: &str, status: RunStatus, limit: Duration) -> RunDetail {
        wait_for(limit, &format!("run {run_id} to be {status}"), || {
            let run = self.run(run_id);
            (run.summary.status == status).then_some(run)
        })
    }

    /// The runs of `workflow`, newest first.
    pub fn runs(&self, workflow: &str) -> Vec<RunSummary> {
        self.call(async |c| c.runs(Some(workflow.into()), None, 1000).await)
            .unwrap_or_else(|e| panic!("runs of {workflow}: {e}"))
    }

    pub fn status(&self) -> StatusView {
        self.call(async |c| c.status().await)
            .unwrap_or_else(|e| panic!("status: {e}"))
    }

    pub fn agents(&self) -> Vec<AgentView> {
        self.call(async |c| c.agents().await)
            .unwrap_or_else(|e| panic!("agents: {e}"))
    }

    /// Runs of `workflow` that started never overlapped: each ended before the next began.
    pub fn assert_runs_never_overlap(&self, workflow: &str) {
        let mut started: Vec<_> = self
            .runs(workflow)
            .into_iter()
            .filter(|r| r.started_at.is_some())
            .collect();
        started.sort_by_key(|r| r.started_at);
        for pair in started.windows(2) {
            let end = pair[0]
                .finished_at
                .expect("an earlier run finished before the next started");
            assert!(
                end <= pair[1].started_at.unwrap(),
                "runs {} and {} overlapped",
                pair[0].run_id,
                pair[1].run_id
            );
        }
    }

    /// Every stored line of a run, paging through.
    pub fn logs(&self, run_id: &str) -> Vec<LogLine> {
        let query = LogQuery::Run {
            run_id: run_id.into(),
            task: None,
        };
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .call(async |c| c.logs(&query, after).await)
                .unwrap_or_else(|e| panic!("logs {run_id}: {e}"));
            after = page.lines.last().map(|l| l.id).or(after);
            out.extend(page.lines);
            if page.next.is_none() {
                return out;
            }
        }
    }
}

/// Opens the DuckDB file read-only (the principal must have stopped) and runs `query`.
pub fn db_rows(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("read-only config");
    let conn = duckdb::Connection::open_with_flags(db, config).expect("open db");
    let mut stmt = conn.prepare(sql).expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        let n = row.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| match row.get_ref(i).expect("value") {
                    duckdb::types::ValueRef::Null => "NULL".to_owned(),
                    duckdb::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    duckdb::types::ValueRef::BigInt(v) => v.to_string(),
                    duckdb::types::ValueRef::Int(v) => v.to_string(),
                    duckdb::types::ValueRef::HugeInt(v) => v.to_string(),
                    other => format!("{other:?}"),
                })
                .collect(),
        );
    }
    out
}
