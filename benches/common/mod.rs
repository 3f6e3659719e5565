#![allow(dead_code)] // each benchmark uses its own part of these helpers

//! Shared by the benchmarks: a real principal process in a temp dir.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_seconds(child: &Child) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Resident memory of a process in MB, from `/proc/PID/status`: all of it (`VmRSS`).
pub fn rss_mb(child: &Child) -> f64 {
    status_mb(child, "VmRSS:")
}

/// The anonymous part of the resident memory (heap and stacks, not the mapped binary).
pub fn anon_mb(child: &Child) -> f64 {
    status_mb(child, "RssAnon:")
}

fn status_mb(child: &Child, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// How many file descriptors a process has open, from `/proc/PID/fd`.
pub fn fd_count(child: &Child) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Starts `cdktr-principal` in `dir` (workflows in `dir/wf`) with `extra` arguments, waits for
/// its ready line (and the embedded agent's, with `--with-agent`), and returns the process and
/// its API endpoint.
pub fn start_principal(dir: &Path, extra: &[&str]) -> anyhow::Result<(Child, String)> {
    if !dir.join("cdktr.toml").exists() {
        std::fs::write(dir.join("cdktr.toml"), "")?;
    }
    let mut principal = Command::new(env!("CARGO_BIN_EXE_cdktr-principal"))
        .current_dir(dir)
        .args([
            "--listen",
            "tcp://127.0.0.1:0",
            "--logs-publish",
            "tcp://127.0.0.1:0",
        ])
        .args(["--workflow-dir", "wf", "--data-dir", "data"])
        .args(extra)
        .env("CDKTR_LOG", daemon_log())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = principal
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut api = None;
    let mut agent_ready = !extra.contains(&"--with-agent");
    while api.is_none() || !agent_ready {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("principal did not start"))?;
        if line.starts_with("cdktr-principal ready") {
            api = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("api="))
                .map(str::to_owned);
        }
        agent_ready |= line.starts_with("cdktr-agent ready");
    }
    let api = api.ok_or_else(|| anyhow::anyhow!("no api= in the ready line"))?;
    Ok((principal, api))
}

/// The daemons' log filter: `warn`, or `$BENCH_CDKTR_LOG` to look inside a figure.
fn daemon_log() -> String {
    std::env::var("BENCH_CDKTR_LOG").unwrap_or_else(|_| "warn".into())
}

/// Stops a daemon as systemd would (SIGTERM) and waits for it to exit.
pub fn stop(child: &mut Child) -> anyhow::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    child.wait()?;
    Ok(())
}

/// Kills the daemons when the measurement ends, however it ends.
pub struct Daemons(pub Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn cdktr(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_cdktr"))
        .current_dir(dir)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cdktr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Starts `cdktr-agent` named `name` with `slots` slots against `api` (with `credential`, if
/// any) and waits for its ready line.
pub fn start_agent(
    dir: &Path,
    api: &str,
    name: &str,
    slots: u32,
    credential: Option<std::path::PathBuf>,
) -> anyhow::Result<Child> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdktr-agent"));
    cmd.current_dir(dir)
        .args(["--principal", api, "--name", name])
        .args(["--max-concurrent-workflows", &slots.to_string()])
        .env("CDKTR_LOG", daemon_log())
        .stdout(Stdio::piped());
    if let Some(credential) = credential {
        cmd.env("CDKTR_AGENT_CREDENTIAL", credential);
    }
    let mut agent = cmd.spawn()?;
    let stdout = agent
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("cdktr-agent ready"));
    anyhow::ensure!(ready, "the agent did not start");
    Ok(agent)
}

/// Waits until nothing is queued or running.
pub async fn wait_idle(client: &cdktr::transport::Client) -> anyhow::Result<()> {
    loop {
        let s = client.status().await?;
        if s.queue_length == 0 && s.runs_active == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The value of the option `--NAME VALUE` on the benchmark's command line.
pub fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A numeric option `--NAME N`, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    text_arg(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The runtime the benchmarks' clients run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A temp dir with the given workflow files in `wf/`.
pub fn workspace(workflows: &[(&str, String)]) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("wf"))?;
    for (name, text) in workflows {
        std::fs::write(dir.path().join(format!("wf/{name}.yml")), text)?;
    }
    Ok(dir)
}

/// A one-task workflow running `script`.
pub fn one_task(script: &str) -> String {
    format!("name: W\ntasks:\n  t: {{name: T, config: !Shell {{script: \"{script}\"}}}}\n")
}

/// Triggers `runs` runs of `workflow`, 32 at a time; fails on the first refused trigger.
pub async fn trigger_many(
    client: &cdktr::transport::Client,
    workflow: &str,
    runs: u64,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let triggered: Vec<_> = futures::stream::iter(0..runs)
        .map(|_| {
            let client = client.clone();
            async move {
                client
                    .trigger(workflow, std::collections::BTreeMap::new(), "api")
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for t in triggered {
        t?;
    }
    Ok(())
}

/// Seeds `runs` ended runs (one task each) queued on 2026-01-01, and `lines` log lines spread
/// over the first 1,000 of them, 64 printing at a time.
pub fn seed(dir: &std::path::Path, runs: u64, lines: u64) -> anyhow::Result<()> {
    let (mut principal, _) = start_principal(dir, &[])?;
    stop(&mut principal)?;
    let db = duckdb::Connection::open(dir.join("data/cdktr.duckdb"))?;
    let per_run = (lines / 1000).max(1);
    let together = 64;
    db.execute_batch(&format!(
        "INSERT INTO runs (run_id, workflow_id, trigger, status, queued_at, started_at, \
           finished_at, agent_id, attempt, last_seq, params, definition, triggered_by) \
         SELECT printf('01SEED%020d', i), 'wf' || (i % 20), 'api', \
           CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, \
           TIMESTAMP '2026-01-01' + to_microseconds(i * 1000), \
           TIMESTAMP '2026-01-01' + to_microseconds(i * 1000 + 10), \
           TIMESTAMP '2026-01-01' + to_microseconds(i * 1000 + 10 + (i % 997) * 1000), \
           'a@h', 1, 3, '{{}}', '{{}}', 'seed' FROM range({runs}) t(i);
         INSERT INTO task_runs (run_id, task_id, attempt, status, started_at, finished_at, exit_code) \
         SELECT run_id, 't', 1, status, started_at, finished_at, 0 FROM runs;
         INSERT INTO logs (id, run_id, workflow_id, task_id, attempt, stream, seq, ts, line) \
         SELECT i + 1, printf('01SEED%020d', run), 'wf' || (run % 20), 't', 1, \
           CASE WHEN i % 50 = 0 THEN 'stderr' ELSE 'stdout' END, \
           (i % ({together} * {per_run})) // {together} + 1, \
           TIMESTAMP '2026-01-01' + to_microseconds(i), \
           CASE WHEN i % 1000 = 0 THEN 'ERROR: seeded failure ' || i ELSE 'seeded line ' || i END \
         FROM (SELECT i, (i // ({together} * {per_run})) * {together} + i % {together} AS run \
               FROM range({lines}) t(i));
         CHECKPOINT;"
    ))?;
    Ok(())
}
