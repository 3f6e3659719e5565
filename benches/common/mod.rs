//! Shared by the benchmarks: a real principal process in a temp dir.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

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
        .env("CDKTR_LOG", "warn")
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
