//! Cockpit frame times: the app's state and drawing driven with ratatui's TestBackend at
//! 200x50, with 10,000 runs, 500 workflows in 50 folders, 100 agents, 500 schedules and a
//! million log lines followed (the window keeps the newest 100,000). Each view is drawn
//! while its selection moves (and the logs scroll and search); p50/p99/max per view are
//! printed as a table and as JSON. Target: p99 under 16 ms.
//!
//! ```sh
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo bench --profile dev --bench tui
//! ```

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use cdktr::model::{
    AgentId, AgentState, Catchup, Overlap, RunId, RunStatus, TaskId, TriggerSource, WorkflowId,
};
use cdktr::protocol::agent::Stream;
use cdktr::protocol::control::{AgentView, RunSummary, ScheduleView};
use cdktr::protocol::logs::LogLine;
use cdktr::transport::WorkflowListing;
use cdktr::tui::{Action, App, Event};

fn workflows() -> anyhow::Result<WorkflowListing> {
    let mut workflows = Vec::new();
    for i in 0..500 {
        let id = format!("team{}.flow{i}", i % 50);
        let yaml = format!(
            "name: Flow {i}\ncron: \"0 0 2 * * *\"\ntasks:\n  a: {{name: A, config: !Shell {{script: 'true'}}}}\n  \
             b: {{name: B, depends: [a], config: !Shell {{script: 'true'}}}}\n"
        );
        let parsed = cdktr::workflow::parse::parse_workflow(
            WorkflowId::new(id.clone()),
            std::path::Path::new("w.yml"),
            &yaml,
        );
        workflows.push(
            parsed
                .workflow
                .ok_or_else(|| anyhow::anyhow!("{:?}", parsed.diagnostics))?,
        );
    }
    Ok(WorkflowListing {
        workflows,
        invalid: Vec::new(),
    })
}

fn app() -> anyhow::Result<App> {
    let start = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("time"))?;
    let mut app = App::new("tcp://127.0.0.1:5561".into());
    app.now = start + Duration::hours(30);
    let runs = (0..10_000u32)
        .rev()
        .map(|i| RunSummary {
            rerun_of: None,
            run_id: RunId::new(format!("01RUN{i:021}")),
            workflow_id: WorkflowId::new(format!("team{}.flow{}", i % 50, i % 500)),
            status: [RunStatus::Completed, RunStatus::Failed, RunStatus::Running][i as usize % 3],
            trigger: TriggerSource::Schedule,
            queued_at: start + Duration::seconds(i as i64 * 10),
            started_at: Some(start + Duration::seconds(i as i64 * 10 + 1)),
            finished_at: (i % 3 != 2).then(|| start + Duration::seconds(i as i64 * 10 + 5)),
            agent: Some(AgentId::new(format!("a{}@host", i % 100))),
            attempt: 1,
            triggered_by: None,
        })
        .collect();
    let agents = (0..100)
        .map(|i| AgentView {
            agent_id: AgentId::new(format!("a{i}@host")),
            host: "host".into(),
            slots: 8,
            running: i % 8,
            ready_slots: 8 - i % 8,
            state: if i % 10 == 0 {
                AgentState::Lost
            } else {
                AgentState::Alive
            },
            registered_at: start,
            last_heartbeat: app.now - Duration::seconds(2),
            version: "0.1.0".into(),
            labels: Default::default(),
            spool_depth: 0,
        })
        .collect();
    let schedules = (0..500)
        .map(|i| ScheduleView {
            workflow_id: WorkflowId::new(format!("team{}.flow{i}", i % 50)),
            cron: "0 0 2 * * *".into(),
            timezone: "UTC".into(),
            next_fire: Some(app.now + Duration::hours(1)),
            paused: i % 7 == 0,
            overlap: Overlap::Skip,
            catchup: Catchup::Latest,
        })
        .collect();
    for event in [
        Event::Workflows(Box::new(workflows()?)),
        Event::Runs(runs),
        Event::Agents(agents),
        Event::Schedules(schedules),
    ] {
        app.update(Action::Net(event));
    }
    Ok(app)
}

fn key(app: &mut App, code: KeyCode) {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

/// Draws `frames` frames, pressing `keys` in turn before each; sorted frame times in ms.
fn frames(
    terminal: &mut Terminal<TestBackend>,
    app: &mut App,
    keys: &[KeyCode],
    frames: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        let started = Instant::now();
        key(app, keys[i % keys.len()]);
        terminal.draw(|f| cdktr::tui::ui::draw(f, app))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn main() -> anyhow::Result<()> {
    let mut app = app()?;
    let mut terminal = Terminal::new(TestBackend::new(200, 50))?;
    let mut results = Vec::new();
    let moves = [
        KeyCode::Char('j'),
        KeyCode::PageDown,
        KeyCode::Char('j'),
        KeyCode::PageUp,
    ];
    for (name, view, keys) in [
        ("workflows (500)", '1', &moves[..]),
        ("runs (10,000)", '2', &moves[..]),
        ("agents (100)", '4', &moves[..]),
        ("schedules (500)", '5', &moves[..]),
    ] {
        key(&mut app, KeyCode::Char(view));
        results.push((name, frames(&mut terminal, &mut app, keys, 400)?));
    }
    // A followed run with a million lines arriving in pages.
    let run = "01RUN000000000000000009999";
    key(&mut app, KeyCode::Char(':'));
    for c in format!("logs {run}").chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let at = app.now;
    let started = Instant::now();
    for page in 0..100u64 {
        let lines = (0..10_000u64)
            .map(|i| {
                let id = page * 10_000 + i + 1;
                LogLine {
                    id,
                    run_id: RunId::new(run),
                    workflow_id: WorkflowId::new("team49.flow499"),
                    task_id: TaskId::new("a"),
                    attempt: 1,
                    stream: if id % 50 == 0 {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    },
                    seq: id,
                    ts: at + Duration::milliseconds(id as i64),
                    line: format!("line {id} of a chatty task with some text after it"),
                    try_no: 1,
                }
            })
            .collect();
        app.update(Action::Net(Event::Lines {
            run: run.into(),
            workflow: Some("team49.flow499".into()),
            lines,
            complete: false,
            earlier: false,
        }));
        terminal.draw(|f| cdktr::tui::ui::draw(f, &mut app))?;
    }
    let ingest = started.elapsed().as_secs_f64();
    let scroll = [KeyCode::Up, KeyCode::PageUp, KeyCode::PageUp, KeyCode::Down];
    results.push((
        "logs (1,000,000 arrived)",
        frames(&mut terminal, &mut app, &scroll, 400)?,
    ));
    key(&mut app, KeyCode::Char('/'));
    for c in "line 99".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    results.push((
        "logs search step (n)",
        frames(&mut terminal, &mut app, &[KeyCode::Char('n')], 100)?,
    ));

    let pct = |t: &[f64], p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    println!("cockpit frame times at 200x50 (target p99 < 16 ms)");
    println!(
        "{:<28} {:>9} {:>9} {:>9}",
        "view", "p50 ms", "p99 ms", "max ms"
    );
    let mut json = Vec::new();
    for (name, t) in &results {
        let (p50, p99, max) = (pct(t, 0.5), pct(t, 0.99), t[t.len() - 1]);
        println!("{name:<28} {p50:>9.2} {p99:>9.2} {max:>9.2}");
        json.push(serde_json::json!({"view": name, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "met": p99 < 16.0}));
    }
    println!(
        "1,000,000 lines taken in pages of 10,000 (a frame after each): {ingest:.2} s, {} held",
        app.logs.len()
    );
    println!(
        "\n{}",
        serde_json::json!({ "frames": json, "log_ingest_s": ingest })
    );
    Ok(())
}
