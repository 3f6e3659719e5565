//! History benchmarks: `cdktr query` over 10 million stored log lines, and trigger
//! acknowledgement times while a large retention pass runs, beside those without one.
//!
//! ```sh
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench --profile dev --bench history -- [--lines 10000000] [--runs 100000]
//! ```
//!
//! Seeding writes the stopped principal's DuckDB file with SQL (1,000 runs sharing the lines,
//! 64 printing at a time), then a principal is started on it. Figures are printed as a table
//! and as JSON; BENCHMARKS.md has the last results.

use std::time::{Duration, Instant};

use cdktr::transport::Client;

#[path = "common/mod.rs"]
mod common;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Median milliseconds of `cdktr query` (through the principal) for each query, five each.
fn query_times(lines: u64) -> anyhow::Result<Vec<(String, f64)>> {
    let dir = common::workspace(&[("one", common::one_task("true"))])?;
    eprintln!("seeding {lines} log lines...");
    common::seed(dir.path(), 1000, lines)?;
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    let _daemons = common::Daemons(vec![principal]);
    let queries = [
        (
            "grouped aggregate over every line",
            "SELECT workflow_id, stream, count(*) AS lines, sum(strlen(line)) AS bytes, \
             count(*) FILTER (WHERE line LIKE 'ERROR%') AS errors FROM logs GROUP BY ALL",
        ),
        (
            "one run's logs",
            "SELECT id, ts, stream, line FROM logs WHERE run_id = '01SEED00000000000000000500' \
             ORDER BY id",
        ),
        (
            "lines matching an error across runs",
            "SELECT run_id, line FROM logs WHERE regexp_matches(line, 'ERROR: seeded failure 9') \
             ORDER BY id DESC LIMIT 50",
        ),
    ];
    common::runtime()?.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(60));
        let mut out = Vec::new();
        for (name, sql) in queries {
            let mut samples = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let result = client.query(sql, None, None).await?;
                anyhow::ensure!(!result.rows.is_empty(), "{name}: no rows");
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            samples.sort_by(f64::total_cmp);
            out.push((name.to_owned(), samples[samples.len() / 2]));
        }
        Ok(out)
    })
}

/// Trigger acknowledgement times (p50, p99 in ms) with no retention pass, then while one
/// removes `runs` old runs (and the pass's duration).
fn gc_beside_triggers(runs: u64, lines: u64) -> anyhow::Result<[f64; 5]> {
    let dir = common::workspace(&[("one", common::one_task("true"))])?;
    eprintln!("seeding {runs} old runs and {lines} lines...");
    common::seed(dir.path(), runs, lines)?;
    std::fs::write(
        dir.path().join("cdktr.toml"),
        "[retention]\nmax_age = \"30d\"\ninterval = \"24h\"\n",
    )?;
    let (principal, api) = common::start_principal(dir.path(), &["--with-agent"])?;
    let _daemons = common::Daemons(vec![principal]);
    common::runtime()?.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(60));
        let acks = async |n: usize| -> anyhow::Result<Vec<f64>> {
            let mut samples = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                client.trigger("one", Default::default(), "api").await?;
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            samples.sort_by(f64::total_cmp);
            Ok(samples)
        };
        let idle = acks(300).await?;
        let gc_client = Client::connect(&api, Duration::from_secs(600));
        let pass = tokio::spawn(async move {
            let started = Instant::now();
            let report = gc_client.gc(false).await;
            (report, started.elapsed().as_secs_f64() * 1000.0)
        });
        let mut during = Vec::new();
        while !pass.is_finished() {
            let started = Instant::now();
            client.trigger("one", Default::default(), "api").await?;
            during.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let (report, took) = pass.await?;
        let report = report?;
        // The principal's own background pass (a minute after the start) may have taken part.
        let left = client
            .query(
                "SELECT count(*) FROM runs WHERE queued_at < TIMESTAMP '2026-02-01'",
                None,
                None,
            )
            .await?;
        anyhow::ensure!(
            report.removed.runs > 0 && left.rows[0][0] == 0,
            "old runs left after the pass: {report:?}, {left:?}"
        );
        during.sort_by(f64::total_cmp);
        eprintln!("{} triggers acknowledged during the pass", during.len());
        Ok([
            percentile(&idle, 0.5),
            percentile(&idle, 0.99),
            percentile(&during, 0.5),
            percentile(&during, 0.99),
            took,
        ])
    })
}

fn main() -> anyhow::Result<()> {
    let lines = common::arg("--lines", 10_000_000);
    let runs = common::arg("--runs", 100_000);
    let mut rows: Vec<(String, f64, &str, &str)> = Vec::new();
    for (name, ms) in query_times(lines)? {
        let target = if name.starts_with("grouped") {
            "< 1000"
        } else if name.starts_with("one run") {
            "< 100"
        } else {
            "reported"
        };
        rows.push((
            format!("cdktr query: {name} ({lines} lines)"),
            ms,
            "ms",
            target,
        ));
    }
    let [idle50, idle99, gc50, gc99, took] = gc_beside_triggers(runs, lines / 10)?;
    rows.push(("trigger ack p50, no gc".into(), idle50, "ms", "reported"));
    rows.push(("trigger ack p99, no gc".into(), idle99, "ms", "reported"));
    rows.push((
        format!("trigger ack p50, during gc of {runs} runs"),
        gc50,
        "ms",
        "reported",
    ));
    rows.push((
        format!("trigger ack p99, during gc of {runs} runs"),
        gc99,
        "ms",
        "reported",
    ));
    rows.push(("gc pass duration".into(), took, "ms", "reported"));
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(6);
    println!(
        "{:<width$} {:>10} {:<4} {:>10}",
        "figure", "value", "unit", "target"
    );
    for (name, value, unit, target) in &rows {
        println!("{name:<width$} {value:>10.1} {unit:<4} {target:>10}");
    }
    let json: Vec<_> = rows
        .iter()
        .map(|(name, value, unit, target)| {
            serde_json::json!({"figure": name, "value": value, "unit": unit, "target": target})
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "lines": lines, "runs": runs, "figures": json })
    );
    Ok(())
}
