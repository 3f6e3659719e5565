//! Scheduler fire lag: how long after its scheduled instant each slot is handled.
//!
//! Starts a real principal (no agent needed) with twelve workflows on a one-second cron, lets
//! it run for a while, then reads every slot's record (`recorded_at - slot`) and prints p50,
//! p99 and max over at least 100 fires. Target: p99 <= 10 ms on an idle machine.
//!
//! Run: `cargo bench --profile dev --bench fire_lag` (the dev profile shares the one DuckDB
//! build with the tests).

use std::time::Duration;

use cdktr::transport::Client;

#[path = "common/mod.rs"]
mod common;

const WORKFLOWS: usize = 12;
const SECONDS: u64 = 10;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for i in 0..WORKFLOWS {
        std::fs::create_dir_all(dir.path().join("wf"))?;
        std::fs::write(
            dir.path().join(format!("wf/w{i}.yml")),
            "name: W\ncron: \"* * * * * *\"\noverlap: allow\ntasks:\n  t: {name: T, config: !Shell {script: \"true\"}}\n",
        )?;
    }
    let (mut principal, api) = common::start_principal(dir.path(), &[])?;
    eprintln!("fire lag: {WORKFLOWS} workflows on a 1 s cron for {SECONDS} s ...");
    std::thread::sleep(Duration::from_secs(SECONDS));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut lags: Vec<f64> = Vec::new();
    rt.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(10));
        for i in 0..WORKFLOWS {
            if let Ok(slots) = client.slot_history(&format!("w{i}"), 1000).await {
                for s in slots.iter().filter(|s| s.fate == "fired") {
                    lags.push(
                        (s.recorded_at - s.slot).num_microseconds().unwrap_or(0) as f64 / 1000.0,
                    );
                }
            }
        }
    });
    let _ = principal.kill();
    let _ = principal.wait();
    anyhow::ensure!(lags.len() >= 100, "only {} fires recorded", lags.len());
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "fire lag over {} fires: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 10 ms)",
        lags.len(),
        at(0.50),
        at(0.99),
        lags[lags.len() - 1]
    );
    Ok(())
}
