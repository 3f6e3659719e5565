//! Log visibility: how long after a task prints a line the line can be read back through the
//! API (stored in DuckDB). Target: p99 <= 50 ms.
//!
//! Starts a real principal with an embedded agent; a task prints 100 lines, each carrying the
//! time it was printed, 50 ms apart; the benchmark polls `logs` every 5 ms and records, for
//! each line, first-seen minus printed. Prints p50, p99 and max.
//!
//! Run: `cargo bench --profile dev --bench log_latency`.

use std::collections::BTreeMap;
use std::time::Duration;

use cdktr::transport::{Client, LogPage, LogQuery};

#[path = "common/mod.rs"]
mod common;

const LINES: usize = 100;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("wf"))?;
    std::fs::write(
        dir.path().join("wf/tick.yml"),
        format!(
            "name: Tick\ntasks:\n  t: {{name: T, config: !Shell {{script: \"for i in $(seq 1 {LINES}); do echo $(date +%s%N); sleep 0.05; done\"}}}}\n"
        ),
    )?;
    let (mut principal, api) = common::start_principal(dir.path(), &["--with-agent"])?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let latencies = rt.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(10));
        let run_id = client.trigger("tick", BTreeMap::new(), "api").await?;
        let query = LogQuery::Run {
            run_id: run_id.to_string(),
            task: None,
        };
        let mut seen: Vec<f64> = Vec::new();
        let mut after = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.len() < LINES && std::time::Instant::now() < deadline {
            if let Ok(LogPage { lines, .. }) = client.logs(&query, after).await {
                let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
                for l in &lines {
                    after = Some(l.id);
                    if let Ok(printed) = l.line.trim().parse::<i64>() {
                        seen.push((now - printed) as f64 / 1e6);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok::<_, anyhow::Error>(seen)
    })?;
    let _ = principal.kill();
    let _ = principal.wait();
    anyhow::ensure!(
        latencies.len() == LINES,
        "saw {} of {LINES} lines",
        latencies.len()
    );
    let mut l = latencies;
    l.sort_by(f64::total_cmp);
    let at = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "log line printed -> readable through the API over {} lines: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= 50 ms)",
        l.len(),
        at(0.5),
        at(0.99),
        l[l.len() - 1]
    );
    Ok(())
}
