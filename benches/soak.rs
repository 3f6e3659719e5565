//! The memory soak: a principal and an agent process on loopback take a steady stream of runs
//! of a chatty workflow for a long time; every sample prints both processes' resident memory
//! (all of it and the anonymous part) and open file descriptors, and the end prints how much
//! each grew after the warm-up, as a table and as JSON. See BENCHMARKS.md for the last results.
//!
//! ```sh
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench --profile dev --bench soak -- --minutes 30 --history-lines 10000000
//! ```
//!
//! Options: `--minutes M` (30), `--rate R` runs per second (10), `--lines N` lines each of the
//! workflow's two tasks prints (100), `--sample S` seconds between samples (30),
//! `--store-memory-mb N` the principal's `store_memory_mb` (its default), `--history-lines N`
//! log lines (over 1,000 runs) seeded into the store before the principal starts, which then
//! reads them all once so that its store's cache is as full as a long-running principal's (0).

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use cdktr::transport::Client;

#[path = "common/mod.rs"]
mod common;

/// One sample of a process.
#[derive(Clone, Copy)]
struct Sample {
    rss: f64,
    anon: f64,
    fds: usize,
}

fn sample(child: &Child) -> Sample {
    Sample {
        rss: common::rss_mb(child),
        anon: common::anon_mb(child),
        fds: common::fd_count(child),
    }
}

/// Least-squares slope of `ys` over `xs`, per unit of `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

fn main() -> anyhow::Result<()> {
    let minutes = common::arg("--minutes", 30);
    let rate = common::arg("--rate", 10).max(1);
    let lines = common::arg("--lines", 100);
    let every = Duration::from_secs(common::arg("--sample", 30).max(1));
    let script = format!(
        "for i in $(seq 1 {lines}); do echo \\\"line $i of a chatty task\\\"; done; echo done >&2"
    );
    let wf = format!(
        "name: Chatty\ntasks:\n  a: {{name: A, config: !Shell {{script: \"{script}\"}}}}\n  \
         b: {{name: B, depends: [a], config: !Shell {{script: \"{script}\"}}}}\n"
    );
    let dir = common::workspace(&[("chatty", wf)])?;
    if let Some(mb) = common::text_arg("--store-memory-mb") {
        std::fs::write(
            dir.path().join("cdktr.toml"),
            format!("[principal]\nstore_memory_mb = {mb}\n"),
        )?;
    }
    let history = common::arg("--history-lines", 0);
    if history > 0 {
        eprintln!("seeding {history} log lines of history...");
        common::seed(dir.path(), 1000, history)?;
    }
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    if history > 0 {
        // A principal that has run for a while has its store's cache full: one scan of the
        // history fills it to `store_memory_mb` before the first sample.
        common::runtime()?.block_on(async {
            let client = Client::connect(&api, Duration::from_secs(300));
            client
                .query(
                    "SELECT count(*), max(id), max(run_id), max(workflow_id), max(task_id), \
                     max(attempt), max(stream), max(seq), max(ts), max(line) FROM logs",
                    None,
                    None,
                )
                .await
        })?;
    }
    let mut daemons = common::Daemons(vec![principal]);
    daemons
        .0
        .push(common::start_agent(dir.path(), &api, "soak", 16, None)?);
    println!(
        "soak: {minutes} min, {rate} runs/s of a two-task workflow printing {} lines per run",
        2 * (lines + 1)
    );
    println!(
        "{:>6} {:>8} | {:>9} {:>9} {:>5} | {:>9} {:>9} {:>5}",
        "min", "runs", "prin. RSS", "anon", "fds", "agent RSS", "anon", "fds"
    );
    let rt = common::runtime()?;
    let (mut times, mut principal_samples, mut agent_samples) = (vec![], vec![], vec![]);
    let triggered = rt.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(30));
        let started = Instant::now();
        let end = started + Duration::from_secs(minutes * 60);
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate as u32);
        let mut next_sample = started;
        let mut triggered = 0u64;
        while Instant::now() < end {
            tick.tick().await;
            client.trigger("chatty", BTreeMap::new(), "api").await?;
            triggered += 1;
            if Instant::now() >= next_sample {
                next_sample += every;
                let (p, a) = (sample(&daemons.0[0]), sample(&daemons.0[1]));
                let at = started.elapsed().as_secs_f64() / 60.0;
                println!(
                    "{at:>6.1} {triggered:>8} | {:>6.1} MB {:>6.1} MB {:>5} | {:>6.1} MB {:>6.1} MB {:>5}",
                    p.rss, p.anon, p.fds, a.rss, a.anon, a.fds
                );
                times.push(at);
                principal_samples.push(p);
                agent_samples.push(a);
            }
        }
        common::wait_idle(&client).await?;
        anyhow::Ok(triggered)
    })?;
    // Every run and every line, counted in the file once the daemons have stopped.
    for child in daemons.0.iter_mut().rev() {
        common::stop(child)?;
    }
    let db = duckdb::Connection::open(dir.path().join("data/cdktr.duckdb"))?;
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0));
    let completed =
        count("SELECT count(*) FROM runs WHERE status = 'COMPLETED' AND workflow_id = 'chatty'")?
            as u64;
    let other =
        count("SELECT count(*) FROM runs WHERE status <> 'COMPLETED' AND workflow_id = 'chatty'")?
            as u64;
    let stored_lines = count("SELECT count(*) FROM logs WHERE workflow_id = 'chatty'")? as u64;
    let expected_lines = completed * 2 * (lines + 1);
    // Growth after the warm-up (the first fifth of the samples: caches and pools filling).
    let skip = times.len() / 5;
    let xs = &times[skip..];
    let mut json = BTreeMap::new();
    println!(
        "\nafter the warm-up ({:.1} min on):",
        times.get(skip).copied().unwrap_or(0.0)
    );
    for (name, samples) in [("principal", &principal_samples), ("agent", &agent_samples)] {
        let tail = &samples[skip..];
        let rss: Vec<f64> = tail.iter().map(|s| s.rss).collect();
        let anon: Vec<f64> = tail.iter().map(|s| s.anon).collect();
        let fds: Vec<f64> = tail.iter().map(|s| s.fds as f64).collect();
        let (min, max) = rss
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let fd_range = fds
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let (rss_slope, anon_slope) = (slope(xs, &rss) * 60.0, slope(xs, &anon) * 60.0);
        println!(
            "  {name:<9} RSS {min:.1}-{max:.1} MB ({rss_slope:+.2} MB/hour; anonymous {anon_slope:+.2} MB/hour), fds {}-{}",
            fd_range.0, fd_range.1
        );
        json.insert(
            name,
            serde_json::json!({
                "rss_min_mb": min, "rss_max_mb": max,
                "rss_mb_per_hour": rss_slope, "anon_mb_per_hour": anon_slope,
                "fds_min": fd_range.0, "fds_max": fd_range.1,
            }),
        );
    }
    println!(
        "  runs: {triggered} triggered, {completed} COMPLETED, {other} not; log lines stored: \
         {stored_lines} of {expected_lines}"
    );
    let json = serde_json::json!({
        "minutes": minutes, "rate": rate, "history_lines": history, "triggered": triggered, "completed": completed,
        "not_completed": other, "lines_stored": stored_lines, "lines_expected": expected_lines,
        "processes": json,
    });
    println!("\n{json}");
    anyhow::ensure!(
        completed == triggered && stored_lines == expected_lines,
        "{completed} of {triggered} runs COMPLETED, {stored_lines} of {expected_lines} lines stored"
    );
    Ok(())
}
