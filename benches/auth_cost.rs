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

#[path = "common/mod.rs"]
mod common;

struct Figures {
    runs_per_s: f64,
    lines_per_s: f64,
}

fn measure(curve: bool, runs: u64, lines: u64) -> anyhow::Result<Figures> {
    let dir = common::workspace(&[
        ("one", common::one_task("true")),
        ("many", common::one_task(&format!("seq 1 {lines}"))),
    ])?;
    let dir = dir.path();
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
    common::runtime()?.block_on(async {
        let client = Client::connect_as(&api, Duration::from_secs(30), credential);
        common::wait_idle(&client).await?;
        let started = Instant::now();
        common::trigger_many(&client, "one", runs).await?;
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
    let (runs, lines) = (common::arg("--runs", 300), common::arg("--lines", 100_000));
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
