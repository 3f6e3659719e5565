//! What CURVE authentication and encryption cost. Runs the same two measurements against a
//! principal without authentication and one with `[auth] keys`, each with a separate agent
//! process (64 slots) connected over loopback TCP, so every message crosses the transport:
//!
//! - dispatch throughput: `--runs` single-task runs of `true`, triggered 32 at a time over
//!   TCP (with an operator credential when authenticated), until all have COMPLETED;
//! - log ingest: one task printing `--lines` lines, from trigger until the run COMPLETED
//!   (every line is then stored in DuckDB).
//!
//! Prints a table and the same figures as JSON. Target: authenticated within 20% of open.
//!
//! Run: `cargo bench --profile dev --bench auth_cost [-- --runs 500 --lines 200000]`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdktr::auth::Credential;
use cdktr::model::RunStatus;
use cdktr::transport::Client;
use futures::StreamExt;

#[path = "common/mod.rs"]
mod common;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    runs_per_s: f64,
    lines_per_s: f64,
}

fn measure(curve: bool, runs: u64, lines: u64) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    std::fs::create_dir_all(dir.join("wf"))?;
    std::fs::write(
        dir.join("wf/one.yml"),
        "name: One\ntasks:\n  t: {name: T, config: !Shell {script: \"true\"}}\n",
    )?;
    std::fs::write(
        dir.join("wf/many.yml"),
        format!(
            "name: Many\ntasks:\n  t: {{name: T, config: !Shell {{script: \"seq 1 {lines}\"}}}}\n"
        ),
    )?;
    std::fs::write(
        dir.join("cdktr.toml"),
        if curve {
            "[principal]\ndata_dir = \"data\"\n[auth]\nkeys = \"keys\"\n"
        } else {
            ""
        },
    )?;
    if curve {
        common::cdktr(
            dir,
            &[
                "keys", "new", "ops", "--role", "operator", "--out", "ops.cred",
            ],
        )?;
        common::cdktr(
            dir,
            &[
                "keys",
                "new",
                "bench",
                "--role",
                "agent",
                "--out",
                "agent.cred",
            ],
        )?;
    }
    let (principal, api) = common::start_principal(dir, &[])?;
    let mut daemons = common::Daemons(vec![principal]);
    daemons.0.push(common::start_agent(
        dir,
        &api,
        "bench",
        64,
        curve.then(|| dir.join("agent.cred")),
    )?);
    let credential = if curve {
        Some(Credential::load(&dir.join("ops.cred"))?)
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = Client::connect_as(&api, Duration::from_secs(30), credential);
        common::wait_idle(&client).await?;
        let started = Instant::now();
        let triggered: Vec<_> = futures::stream::iter(0..runs)
            .map(|_| {
                let client = client.clone();
                async move { client.trigger("one", BTreeMap::new(), "api").await }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        for t in triggered {
            t?;
        }
        common::wait_idle(&client).await?;
        let runs_per_s = runs as f64 / started.elapsed().as_secs_f64();
        let done = client
            .runs(Some("one".into()), Some(RunStatus::Completed), 100_000)
            .await?;
        anyhow::ensure!(
            done.len() as u64 == runs,
            "{} of {runs} runs COMPLETED",
            done.len()
        );

        let started = Instant::now();
        let run_id = client.trigger("many", BTreeMap::new(), "api").await?;
        loop {
            let run = client.run(run_id.as_str()).await?;
            if run.summary.status.is_terminal() {
                anyhow::ensure!(
                    run.summary.status == RunStatus::Completed,
                    "ingest run failed"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lines_per_s = lines as f64 / started.elapsed().as_secs_f64();
        Ok(Figures {
            runs_per_s,
            lines_per_s,
        })
    })
}

fn main() -> anyhow::Result<()> {
    let (runs, lines) = (arg("--runs", 300), arg("--lines", 100_000));
    let open = measure(false, runs, lines)?;
    let curve = measure(true, runs, lines)?;
    let ratio = |a: f64, b: f64| 100.0 * (b - a) / a;
    println!(
        "{:<36} {:>12} {:>12} {:>8}",
        "figure", "open", "CURVE", "change"
    );
    println!(
        "{:<36} {:>12.1} {:>12.1} {:>7.1}%",
        format!("dispatch ({runs} runs), runs/s"),
        open.runs_per_s,
        curve.runs_per_s,
        ratio(open.runs_per_s, curve.runs_per_s)
    );
    println!(
        "{:<36} {:>12.0} {:>12.0} {:>7.1}%",
        format!("log ingest ({lines} lines), lines/s"),
        open.lines_per_s,
        curve.lines_per_s,
        ratio(open.lines_per_s, curve.lines_per_s)
    );
    println!(
        "{}",
        serde_json::json!({
            "runs": runs,
            "lines": lines,
            "open": {"runs_per_s": open.runs_per_s, "lines_per_s": open.lines_per_s},
            "curve": {"runs_per_s": curve.runs_per_s, "lines_per_s": curve.lines_per_s},
        })
    );
    Ok(())
}
