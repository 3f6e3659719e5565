//! The end-to-end benchmark: real principal and agent processes on loopback, every figure of
//! the speed targets this harness can measure, printed as a table and as JSON.
//!
//! Run it on an optimised build of this crate (the dependencies, DuckDB included, are already
//! optimised by `[profile.dev.package."*"]`, so this rebuilds only cdktr, about 3 minutes):
//!
//! ```sh
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench --profile dev --bench e2e -- [--runs 5000]
//! ```
//!
//! Figures: throughput with one 64-slot agent (and the principal's CPU per run) and with ten
//! 8-slot agents; trigger -> task started (p50/p99, idle system); `cdktr run --wait` wall time
//! (CLI process included); log ingest with 8 tasks printing as fast as they can (lines/s
//! stored, lines lost); idle RSS of a principal with 1,000 workflows and of an agent; time
//! from start to READY with 1,000 workflow files. See BENCHMARKS.md for the last results.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdktr::model::RunStatus;
use cdktr::transport::{Client, LogPage, LogQuery};

#[path = "common/mod.rs"]
mod common;

/// One printed figure: name, value, unit, target, whether it is met.
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    target: String,
    met: bool,
}

fn figure(
    name: impl Into<String>,
    value: f64,
    unit: &'static str,
    target: &str,
    met: bool,
) -> Figure {
    Figure {
        name: name.into(),
        value,
        unit,
        target: target.into(),
        met,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `runs` runs of `true` triggered 32 at a time; runs/s until all COMPLETED, and the
/// principal's CPU per run.
fn throughput(runs: u64, agents: u32, slots: u32) -> anyhow::Result<(f64, f64)> {
    let dir = common::workspace(&[("one", common::one_task("true"))])?;
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    let mut daemons = common::Daemons(vec![principal]);
    for i in 0..agents {
        daemons.0.push(common::start_agent(
            dir.path(),
            &api,
            &format!("a{i}"),
            slots,
            None,
        )?);
    }
    common::runtime()?.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(30));
        common::wait_idle(&client).await?;
        let cpu_before = common::cpu_seconds(&daemons.0[0]);
        let started = Instant::now();
        common::trigger_many(&client, "one", runs).await?;
        common::wait_idle(&client).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = common::cpu_seconds(&daemons.0[0]) - cpu_before;
        let done = client
            .runs(Some("one".into()), Some(RunStatus::Completed), 100_000)
            .await?;
        anyhow::ensure!(
            done.len() as u64 == runs,
            "{} of {runs} runs COMPLETED",
            done.len()
        );
        Ok((runs as f64 / elapsed, cpu * 1000.0 / runs as f64))
    })
}

/// How `trigger_to_start` runs its task.
#[derive(Clone, Copy, PartialEq)]
enum StartPath {
    /// `!Subprocess` on an agent process of its own, as deployed.
    Agent,
    /// The same through `sh -c` (`!Shell`: the shell's start and its fork of `date` added).
    Shell,
    /// `!Subprocess` on the principal's embedded agent (`--with-agent`), which forks the
    /// principal to give tasks back their umask.
    Embedded,
}

/// Trigger -> the task's first instruction, one run at a time on an idle system (ms): the
/// task is `date +%s%N`.
fn trigger_to_start(samples: usize, path: StartPath) -> anyhow::Result<Vec<f64>> {
    let shell = path == StartPath::Shell;
    let task = if shell {
        common::one_task("date +%s%N")
    } else {
        "name: W\ntasks:\n  t: {name: T, config: !Subprocess {cmd: date, args: [\"+%s%N\"]}}\n"
            .to_owned()
    };
    let dir = common::workspace(&[("stamp", task)])?;
    let embedded = path == StartPath::Embedded;
    let (principal, api) =
        common::start_principal(dir.path(), if embedded { &["--with-agent"] } else { &[] })?;
    let mut daemons = common::Daemons(vec![principal]);
    if !embedded {
        daemons
            .0
            .push(common::start_agent(dir.path(), &api, "stamp", 4, None)?);
    }
    common::runtime()?.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(30));
        common::wait_idle(&client).await?;
        let mut lags = Vec::new();
        for _ in 0..samples {
            let sent = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            let run_id = client.trigger("stamp", BTreeMap::new(), "api").await?;
            common::wait_idle(&client).await?;
            let query = LogQuery::Run {
                run_id: run_id.to_string(),
                task: None,
            };
            let LogPage { lines, .. } = client.logs(&query, None).await?;
            let started: i64 = lines
                .first()
                .and_then(|l| l.line.trim().parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no time stamp from run {run_id}"))?;
            lags.push((started - sent) as f64 / 1e6);
        }
        lags.sort_by(f64::total_cmp);
        Ok(lags)
    })
}

/// Wall time of `cdktr run W --wait` for a one-task `true` workflow (ms), CLI included.
fn run_wait(samples: usize) -> anyhow::Result<Vec<f64>> {
    let dir = common::workspace(&[("one", common::one_task("true"))])?;
    let (principal, api) = common::start_principal(dir.path(), &["--with-agent"])?;
    let _daemons = common::Daemons(vec![principal]);
    let mut walls = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        common::cdktr(dir.path(), &["--principal", &api, "run", "one", "--wait"])?;
        walls.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    walls.sort_by(f64::total_cmp);
    Ok(walls)
}

/// Eight tasks printing `lines` lines each as fast as they can, on one agent process:
/// stored lines/s, lines lost.
fn ingest(lines: u64) -> anyhow::Result<(f64, u64)> {
    let mut wf = String::from("name: Chatty\ntasks:\n");
    for i in 0..8 {
        wf.push_str(&format!(
            "  t{i}: {{name: T{i}, config: !Shell {{script: \"seq 1 {lines}\"}}}}\n"
        ));
    }
    let dir = common::workspace(&[("chatty", wf)])?;
    // The agent is a process of its own, as deployed: it encodes, the principal decodes and
    // stores, each on its own core.
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    let mut daemons = common::Daemons(vec![principal]);
    daemons
        .0
        .push(common::start_agent(dir.path(), &api, "chatty", 8, None)?);
    common::runtime()?.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(30));
        let started = Instant::now();
        let run_id = client.trigger("chatty", BTreeMap::new(), "api").await?;
        common::wait_idle(&client).await?;
        let rate = (8 * lines) as f64 / started.elapsed().as_secs_f64();
        let query = LogQuery::Run {
            run_id: run_id.to_string(),
            task: None,
        };
        let (mut stored, mut after) = (0u64, None);
        loop {
            let page = client.logs(&query, after).await?;
            stored += page.lines.len() as u64;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok((rate, (8 * lines).saturating_sub(stored)))
    })
}

/// What a principal with 1,000 workflow files and one idle agent hold.
struct Thousand {
    /// ms from start to READY.
    ready: f64,
    /// Principal RSS 3 s after the agent registered (MB).
    settled: f64,
    /// Principal RSS once idle (its store wrote nothing for 20 s), and the anonymous part.
    idle: f64,
    idle_anon: f64,
    /// `cdktr run --wait` wall time of the first run after the idle spell (ms).
    first_run: f64,
    agent: f64,
}

/// The principal hands memory back after its store has written nothing for 20 s
/// (`runtime::memory::release_when_idle`); this waits that long and a little more.
const IDLE_WAIT: Duration = Duration::from_secs(25);

fn thousand_workflows() -> anyhow::Result<Thousand> {
    let workflows: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("w{i:04}"), common::one_task("true")))
        .collect();
    let refs: Vec<(&str, String)> = workflows
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let dir = common::workspace(&refs)?;
    let started = Instant::now();
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    let ready = started.elapsed().as_secs_f64() * 1000.0;
    let mut daemons = common::Daemons(vec![principal]);
    daemons
        .0
        .push(common::start_agent(dir.path(), &api, "idle", 4, None)?);
    std::thread::sleep(Duration::from_secs(3));
    let settled = common::rss_mb(&daemons.0[0]);
    std::thread::sleep(IDLE_WAIT);
    let (idle, idle_anon, agent) = (
        common::rss_mb(&daemons.0[0]),
        common::anon_mb(&daemons.0[0]),
        common::rss_mb(&daemons.0[1]),
    );
    let run = Instant::now();
    common::cdktr(dir.path(), &["--principal", &api, "run", "w0000", "--wait"])?;
    Ok(Thousand {
        ready,
        settled,
        idle,
        idle_anon,
        first_run: run.elapsed().as_secs_f64() * 1000.0,
        agent,
    })
}

/// History seeded straight into the store (not dispatched): `runs` finished runs, and
/// `lines` log lines spread over 1,000 runs of 10,000 lines, `together` of them printing at
/// once (their lines interleaved one by one, as runs on one agent's slots print). The
/// milliseconds a restarted principal takes to READY, then `runs list`, `status`, and one
/// run's logs (a page of 5,000 lines) through the API, each the median of 5.
///
/// The store is columnar: a page of one run's lines decompresses every block of the `line`
/// column that holds one of them, so the more runs printed together, the more of the table a
/// page reads (with all 1,000 together, half of it).
fn history(runs: u64, lines: u64, together: u64) -> anyhow::Result<(f64, f64, f64, f64)> {
    let dir = common::workspace(&[("one", common::one_task("true"))])?;
    let per_run = lines / 1000;
    // A first start creates the schema; stopped, the file is seeded with SQL.
    let (mut principal, _) = common::start_principal(dir.path(), &[])?;
    common::stop(&mut principal)?;
    let db = duckdb::Connection::open(dir.path().join("data/cdktr.duckdb"))?;
    db.execute_batch(&format!(
        "INSERT INTO runs (run_id, workflow_id, trigger, status, queued_at, started_at, \
           finished_at, agent_id, attempt, last_seq, params, definition, triggered_by) \
         SELECT printf('01SEED%020d', i), 'one', 'api', 'COMPLETED', \
           TIMESTAMP '2026-01-01' + to_microseconds(i * 1000), \
           TIMESTAMP '2026-01-01' + to_microseconds(i * 1000 + 10), \
           TIMESTAMP '2026-01-01' + to_microseconds(i * 1000 + 20), \
           'a@h', 1, 3, '{{}}', '{{}}', 'seed' FROM range({runs}) t(i);
         INSERT INTO task_runs (run_id, task_id, attempt, status, started_at, finished_at, exit_code) \
         SELECT run_id, 't', 1, 'COMPLETED', started_at, finished_at, 0 FROM runs;
         INSERT INTO logs (id, run_id, workflow_id, task_id, attempt, stream, seq, ts, line) \
         SELECT i + 1, printf('01SEED%020d', run), 'one', 't', 1, 'stdout', \
           (i % ({together} * {per_run})) // {together} + 1, \
           TIMESTAMP '2026-01-01' + to_microseconds(i), 'seeded line ' || i \
         FROM (SELECT i, (i // ({together} * {per_run})) * {together} + i % {together} AS run \
               FROM range({lines}) t(i));
         CHECKPOINT;"
    ))?;
    drop(db);
    let started = Instant::now();
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    let ready = started.elapsed().as_secs_f64() * 1000.0;
    let _daemons = common::Daemons(vec![principal]);
    common::runtime()?.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(30));
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let time = async |what: &str| -> anyhow::Result<f64> {
            let mut samples = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                match what {
                    "list" => drop(client.runs(None, None, 50).await?),
                    "status" => drop(client.status().await?),
                    _ => {
                        let query = LogQuery::Run {
                            run_id: format!("01SEED{:020}", 500),
                            task: None,
                        };
                        let page = client.logs(&query, None).await?;
                        anyhow::ensure!(!page.lines.is_empty(), "no seeded lines");
                    }
                }
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(median(samples))
        };
        Ok((
            ready,
            time("list").await?,
            time("status").await?,
            time("logs").await?,
        ))
    })
}

/// 100 simulated agents heart-beating every second (registered, never pulling work) and
/// 10,000 queued runs: the principal's CPU (cores) over 10 s of that, then the rate at which
/// one real 64-slot agent drains the queue, and how many simulated agents were lost.
fn crowd(queued: u64) -> anyhow::Result<(f64, f64, usize)> {
    use cdktr::protocol::agent::{AgentInfo, AgentRequest};
    use cdktr::protocol::Request;
    let dir = common::workspace(&[("one", common::one_task("true"))])?;
    let (principal, api) = common::start_principal(dir.path(), &[])?;
    let mut daemons = common::Daemons(vec![principal]);
    let rt = common::runtime()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let (cpu_cores, client) = rt.block_on(async {
        let client = Client::connect(&api, Duration::from_secs(30));
        common::trigger_many(&client, "one", queued).await?;
        for i in 0..100 {
            let (api, stop) = (api.clone(), stop.clone());
            tokio::spawn(async move {
                let agent = Client::connect(&api, Duration::from_secs(10));
                let id = cdktr::model::AgentId::new(format!("sim{i}@bench"));
                let register = Request::Agent(AgentRequest::Register {
                    agent: AgentInfo {
                        id: id.clone(),
                        name: format!("sim{i}"),
                        host: "bench".into(),
                        slots: 1,
                        labels: BTreeMap::new(),
                        version: "sim".into(),
                        instance: format!("sim{i}"),
                    },
                    running: Vec::new(),
                });
                let _ = agent.request(register).await;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                while !stop.is_cancelled() {
                    tick.tick().await;
                    let beat = Request::Agent(AgentRequest::Heartbeat {
                        agent_id: id.clone(),
                        running: Vec::new(),
                        free_slots: 0,
                        spool: 0,
                    });
                    let _ = agent.request(beat).await;
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = common::cpu_seconds(&daemons.0[0]);
        tokio::time::sleep(Duration::from_secs(10)).await;
        anyhow::Ok(((common::cpu_seconds(&daemons.0[0]) - before) / 10.0, client))
    })?;
    let started = Instant::now();
    daemons
        .0
        .push(common::start_agent(dir.path(), &api, "real", 64, None)?);
    let (rate, lost) = rt.block_on(async {
        common::wait_idle(&client).await?;
        let rate = queued as f64 / started.elapsed().as_secs_f64();
        let agents = client.agents().await?;
        let lost = agents
            .iter()
            .filter(|a| {
                a.agent_id.as_str().starts_with("sim") && a.state != cdktr::model::AgentState::Alive
            })
            .count();
        stop.cancel();
        anyhow::Ok((rate, lost))
    })?;
    Ok((cpu_cores, rate, lost))
}

/// The comparison hook: another orchestrator's throughput on the same workload. `trigger`
/// is a shell command that queues `$N` runs of a one-task `true` workflow; `count` prints how
/// many of them have completed. Runs/s from the start of `trigger` until `count` reaches N.
fn compare(trigger: &str, count: &str, runs: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .args(["-c", trigger])
        .env("N", runs.to_string())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "the comparison's trigger command failed: {status}"
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let out = std::process::Command::new("sh")
            .args(["-c", count])
            .output()?;
        let done: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if done >= runs {
            return Ok(runs as f64 / started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the comparison did not finish in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a group of figures is wanted: all by default, or those named by `--only NAME`
/// (throughput, start, wait, ingest, workflows, history, crowd).
fn wanted(group: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--only") {
        Some(i) => args
            .get(i + 1)
            .is_some_and(|groups| groups.split(',').any(|g| g == group)),
        None => true,
    }
}

fn main() -> anyhow::Result<()> {
    let runs = common::arg("--runs", 5000);
    let lines = common::arg("--lines", 100_000);
    let mut f = Vec::new();
    if wanted("throughput") {
        eprintln!("throughput, one agent of 64 slots, {runs} runs...");
        let (rate, cpu) = throughput(runs, 1, 64)?;
        f.push(figure(
            "throughput, 1 agent x 64 slots",
            rate,
            "runs/s",
            ">= 300",
            rate >= 300.0,
        ));
        f.push(figure("principal CPU per run", cpu, "ms", "reported", true));
        eprintln!("throughput, ten agents of 8 slots...");
        let (rate, _) = throughput(runs, 10, 8)?;
        f.push(figure(
            "throughput, 10 agents x 8 slots",
            rate,
            "runs/s",
            ">= 300",
            rate >= 300.0,
        ));
    }
    if wanted("start") {
        eprintln!("trigger -> start...");
        let lags = trigger_to_start(100, StartPath::Agent)?;
        let (p50, p99) = (percentile(&lags, 0.5), percentile(&lags, 0.99));
        f.push(figure(
            "trigger -> task start p50",
            p50,
            "ms",
            "<= 5",
            p50 <= 5.0,
        ));
        f.push(figure(
            "trigger -> task start p99",
            p99,
            "ms",
            "<= 25",
            p99 <= 25.0,
        ));
        for (path, name) in [
            (StartPath::Shell, "  the same through `sh -c`, p50"),
            (StartPath::Embedded, "  the same on the embedded agent, p50"),
        ] {
            let lags = trigger_to_start(100, path)?;
            f.push(figure(name, percentile(&lags, 0.5), "ms", "reported", true));
        }
    }
    if wanted("wait") {
        eprintln!("cdktr run --wait...");
        let wall = percentile(&run_wait(20)?, 0.5);
        f.push(figure(
            "`cdktr run --wait` wall p50",
            wall,
            "ms",
            "<= 50",
            wall <= 50.0,
        ));
    }
    if wanted("ingest") {
        eprintln!("log ingest, 8 tasks x {lines} lines...");
        let (rate, lost) = ingest(lines)?;
        f.push(figure(
            "log ingest, 8 tasks",
            rate,
            "lines/s",
            ">= 100000",
            rate >= 100_000.0,
        ));
        f.push(figure(
            "log lines lost",
            lost as f64,
            "lines",
            "0",
            lost == 0,
        ));
    }
    if wanted("workflows") {
        eprintln!("1,000 workflows...");
        let t = thousand_workflows()?;
        f.push(figure(
            "start -> READY, 1,000 files",
            t.ready,
            "ms",
            "<= 500",
            t.ready <= 500.0,
        ));
        f.push(figure(
            "principal RSS 3 s after the agent registered",
            t.settled,
            "MB",
            "reported",
            true,
        ));
        f.push(figure(
            "principal RSS idle, 1,000 workflows",
            t.idle,
            "MB",
            "<= 40",
            t.idle <= 40.0,
        ));
        f.push(figure(
            "  of which anonymous (heap, stacks)",
            t.idle_anon,
            "MB",
            "reported",
            true,
        ));
        f.push(figure(
            "  first `run --wait` after the idle spell",
            t.first_run,
            "ms",
            "reported",
            true,
        ));
        f.push(figure(
            "agent RSS idle",
            t.agent,
            "MB",
            "<= 15",
            t.agent <= 15.0,
        ));
    }
    if wanted("history") {
        let (seeded, seeded_lines) = (
            common::arg("--history-runs", 1_000_000),
            common::arg("--history-lines", 10_000_000),
        );
        eprintln!("history: {seeded} runs and {seeded_lines} log lines seeded...");
        let (ready, list, status, logs) = history(seeded, seeded_lines, 64)?;
        f.push(figure(
            "start -> READY, 1M runs in history",
            ready,
            "ms",
            "<= 1000",
            ready <= 1000.0,
        ));
        f.push(figure(
            "`runs list`, 1M runs in history",
            list,
            "ms",
            "<= 200",
            list <= 200.0,
        ));
        f.push(figure(
            "`status`, 1M runs in history",
            status,
            "ms",
            "<= 200",
            status <= 200.0,
        ));
        f.push(figure(
            "one run's logs among 10M lines, 64 runs at a time",
            logs,
            "ms",
            "<= 100",
            logs <= 100.0,
        ));
        eprintln!("history: {seeded_lines} log lines of 1,000 runs printing all at once...");
        let (_, _, _, worst) = history(1000, seeded_lines, 1000)?;
        f.push(figure(
            "  the same, all 1,000 runs printing at once",
            worst,
            "ms",
            "reported",
            true,
        ));
    }
    if wanted("crowd") {
        eprintln!("100 simulated agents and 10,000 queued runs...");
        let (cores, rate, lost) = crowd(10_000)?;
        f.push(figure(
            "principal CPU, 100 agents + 10,000 queued",
            cores,
            "cores",
            "< 1",
            cores < 1.0,
        ));
        f.push(figure(
            "dispatch draining 10,000, 100 agents",
            rate,
            "runs/s",
            ">= 300",
            rate >= 300.0,
        ));
        f.push(figure(
            "simulated agents falsely lost",
            lost as f64,
            "agents",
            "0",
            lost == 0,
        ));
    }
    if let (Some(trigger), Some(count)) = (
        common::text_arg("--compare-trigger"),
        common::text_arg("--compare-count"),
    ) {
        let ours = match f.iter().find(|x| x.name.starts_with("throughput, 1 agent")) {
            Some(x) => x.value,
            None => throughput(runs, 1, 64)?.0,
        };
        eprintln!("comparison: {runs} runs through the other orchestrator...");
        let theirs = compare(&trigger, &count, runs)?;
        f.push(figure(
            "comparison: other orchestrator",
            theirs,
            "runs/s",
            "reported",
            true,
        ));
        f.push(figure(
            "comparison: cdktr / other",
            ours / theirs,
            "x",
            "reported",
            true,
        ));
    }
    print(runs, lines, &f);
    Ok(())
}

fn print(runs: u64, lines: u64, figures: &[Figure]) {
    let width = figures
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<width$} {:>12} {:<8} {:>10}  met",
        "figure", "value", "unit", "target"
    );
    for f in figures {
        println!(
            "{:<width$} {:>12.1} {:<8} {:>10}  {}",
            f.name,
            f.value,
            f.unit,
            f.target,
            if f.met { "yes" } else { "NO" }
        );
    }
    let json: Vec<_> = figures
        .iter()
        .map(|f| {
            serde_json::json!({
                "figure": f.name, "value": f.value, "unit": f.unit,
                "target": f.target, "met": f.met,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "runs": runs, "lines": lines, "figures": json })
    );
}
