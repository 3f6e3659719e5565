//! Every view and overlay drawn on a TestBackend (insta snapshots; times are fixed and in
//! UTC, so nothing volatile is drawn), and the keys that act, checked on the app.

use chrono::{TimeZone, Utc};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use super::*;
use crate::model::{
    AgentId, AgentState, Catchup, Overlap, Role, RunId, SlotFate, TaskId, TriggerSource, WorkflowId,
};
use crate::protocol::agent::Stream;
use crate::protocol::control::{
    AgentView, Notice, QueryColumn, QueryResult, RunDetail, RunSummary, ScheduleView, SlotRecord,
    StatusView, TaskRunView,
};
use crate::protocol::logs::LogLine;
use crate::transport::WorkflowListing;
use crate::tui::app::{Action, Command, Event};
use crate::workflow::InvalidFile;

fn at(s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 20, 9, 30, s)
        .single()
        .unwrap_or_default()
}

fn workflow(id: &str, yaml: &str) -> crate::model::Workflow {
    let parsed = crate::workflow::parse::parse_workflow(
        WorkflowId::new(id),
        std::path::Path::new(&format!(
            "/etc/cdktr/workflows/{}.yml",
            id.replace('.', "/")
        )),
        yaml,
    );
    parsed
        .workflow
        .unwrap_or_else(|| panic!("{:?}", parsed.diagnostics))
}

fn run(id: &str, wf: &str, status: RunStatus, s: u32) -> RunSummary {
    RunSummary {
        rerun_of: None,
        run_id: RunId::new(id),
        workflow_id: WorkflowId::new(wf),
        status,
        trigger: TriggerSource::Cli,
        queued_at: at(s),
        started_at: Some(at(s + 1)),
        finished_at: (status != RunStatus::Running).then(|| at(s + 4)),
        agent: Some(AgentId::new("worker@host")),
        attempt: 1,
        triggered_by: None,
    }
}

fn task(id: &str, status: TaskStatus, exit: Option<i32>, reason: Option<&str>) -> TaskRunView {
    TaskRunView {
        try_no: 1,
        tries: Vec::new(),
        task_id: TaskId::new(id),
        status,
        started_at: (status != TaskStatus::Skipped).then(|| at(11)),
        finished_at: Some(at(13)),
        exit_code: exit,
        attempt: 1,
        reason: reason.map(str::to_owned),
    }
}

const DAILY: &str = "name: Daily ETL\ndescription: Loads yesterday's orders\n\
    params:\n  day: {default: '2025-01-19', pattern: '[0-9-]+'}\n  env: {choices: [dev, prod]}\n\
    tasks:\n  extract: {name: E, config: !Shell {script: 'true'}}\n  \
    load: {name: L, depends: [extract], config: !Shell {script: 'true'}}\n  \
    report: {name: R, depends: [load], config: !Shell {script: 'true'}}\n";
const HELLO: &str = "name: Hello\ntasks:\n  t: {name: T, config: !Shell {script: 'echo hi'}}\n";

/// A principal with two workflows in a folder, one at the top, an invalid file, three runs,
/// two agents (one lost) and a schedule.
pub(super) fn app() -> App {
    let mut app = App::new("tcp://127.0.0.1:5561".into());
    app.now = at(20);
    app.local = false;
    let runs = vec![
        run("01C", "hello", RunStatus::Running, 15),
        run("01B", "etl.daily", RunStatus::Failed, 10),
        run("01A", "etl.daily", RunStatus::Completed, 0),
    ];
    let events = vec![
        Event::Status(Box::new(StatusView {
            version: "0.1.0".into(),
            protocol: 1,
            uptime_secs: 4200,
            workflows_loaded: 3,
            workflows_invalid: 1,
            queue_length: 0,
            runs_active: 1,
            agents_alive: 1,
            agents_total: 2,
            logs_publish: "tcp://127.0.0.1:5563".into(),
            logs_publish_local: None,
            store: "ok".into(),
            changes: 7,
            catalog: 1,
            warnings: 1,
        })),
        Event::Warnings(vec![Notice {
            seq: 1,
            at: at(5),
            level: "warn".into(),
            target: "cdktr::principal::reload".into(),
            message: "invalid edit: keeping the last valid version workflow=broken".into(),
        }]),
        Event::Role(Role::Operator),
        Event::Workflows(Box::new(WorkflowListing {
            workflows: vec![
                workflow("etl.daily", DAILY),
                workflow("etl.weekly", HELLO),
                workflow("hello", HELLO),
            ],
            invalid: vec![InvalidFile {
                id: Some(WorkflowId::new("broken")),
                file: "/etc/cdktr/workflows/broken.yml".into(),
                errors: vec!["broken.yml:3:5: unknown field `taks`".into()],
                previous_version_active: false,
            }],
        })),
        Event::Schedules(vec![ScheduleView {
            workflow_id: WorkflowId::new("etl.daily"),
            cron: "0 0 2 * * *".into(),
            timezone: "UTC".into(),
            next_fire: Some(at(0) + chrono::Duration::hours(17)),
            paused: false,
            overlap: Overlap::Skip,
            catchup: Catchup::Latest,
        }]),
        Event::Agents(vec![
            AgentView {
                agent_id: AgentId::new("worker@host"),
                host: "host".into(),
                slots: 4,
                running: 1,
                ready_slots: 3,
                state: AgentState::Alive,
                registered_at: at(0),
                last_heartbeat: at(18),
                version: "0.1.0".into(),
                labels: [("gpu".to_owned(), String::new())].into(),
                spool_depth: 0,
            },
            AgentView {
                agent_id: AgentId::new("old@host"),
                host: "host".into(),
                slots: 1,
                running: 0,
                ready_slots: 0,
                state: AgentState::Lost,
                registered_at: at(0),
                last_heartbeat: at(0),
                version: "0.1.0".into(),
                labels: Default::default(),
                spool_depth: 1200,
            },
        ]),
        Event::Runs(runs.clone()),
        Event::Detail(Box::new(RunDetail {
            summary: runs[0].clone(),
            params: Default::default(),
            late_records: 0,
            tasks: vec![task("t", TaskStatus::Running, None, None)],
        })),
    ];
    for event in events {
        app.update(Action::Net(event));
    }
    app
}

pub(super) fn key(app: &mut App, code: KeyCode) -> Vec<Command> {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

pub(super) fn keys(app: &mut App, text: &str) -> Vec<Command> {
    text.chars()
        .flat_map(|c| key(app, KeyCode::Char(c)))
        .collect()
}

pub(super) fn render(app: &mut App, width: u16, height: u16) -> String {
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("{e}"));
    terminal
        .draw(|f| draw(f, app))
        .unwrap_or_else(|e| panic!("{e}"));
    terminal.backend().to_string()
}

fn failed_detail(app: &mut App) {
    let failed = app.data.runs[1].clone();
    app.data.detail = Some(RunDetail {
        summary: failed,
        params: Default::default(),
        late_records: 0,
        tasks: vec![
            task("extract", TaskStatus::Completed, Some(0), None),
            task(
                "load",
                TaskStatus::Failed,
                Some(3),
                Some("exited with code 3"),
            ),
            task(
                "report",
                TaskStatus::Skipped,
                None,
                Some("upstream task `load` did not complete"),
            ),
        ],
    });
}

#[test]
fn runs_view_with_the_selected_runs_tasks() {
    let mut app = app();
    key(&mut app, KeyCode::Down);
    failed_detail(&mut app);
    insta::assert_snapshot!(render(&mut app, 110, 24));
    // Wide enough, the run's DAG beside its tasks, marked by their states.
    let wide = render(&mut app, 150, 44);
    assert!(
        wide.contains("│ load ✗ │") && wide.contains("│ report ↷ │"),
        "{wide}"
    );
    insta::assert_snapshot!("runs_with_dag", wide);
}

#[test]
fn workflows_view_is_a_tree_by_folder_with_the_dag() {
    let mut app = app();
    let commands = key(&mut app, KeyCode::Char('1'));
    assert_eq!(
        commands,
        vec![Command::WatchRun(None)],
        "a folder has no run"
    );
    // etl/ -> etl.daily: its latest run is watched, for the DAG's colours.
    let commands = key(&mut app, KeyCode::Down);
    assert_eq!(commands, vec![Command::WatchRun(Some("01B".into()))]);
    failed_detail(&mut app);
    insta::assert_snapshot!(render(&mut app, 120, 24));
    // With room, the DAG is drawn as boxes and edges.
    let tall = render(&mut app, 140, 36);
    assert!(
        tall.contains("│ extract ✓ │") && tall.contains("│ load ✗ │"),
        "{tall}"
    );
    insta::assert_snapshot!("workflows_dag_boxes", tall);
    // Folding the folder hides its workflows.
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Enter);
    let text = render(&mut app, 120, 24);
    assert!(
        !text.contains("weekly") && text.contains("▸ etl/"),
        "{text}"
    );
}

#[test]
fn logs_view_follows_searches_and_filters_streams() {
    let mut app = app();
    let commands = key(&mut app, KeyCode::Char(':'));
    assert!(commands.is_empty());
    keys(&mut app, "logs 01C");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(commands, vec![Command::FollowLogs(Some("01C".into()))]);
    assert_eq!(app.view, View::Logs);
    let lines = (1..=30).map(|i| LogLine {
        id: i,
        run_id: RunId::new("01C"),
        workflow_id: WorkflowId::new("hello"),
        task_id: TaskId::new("t"),
        attempt: 1,
        stream: if i % 10 == 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        seq: i,
        ts: at(15) + chrono::Duration::milliseconds(i as i64 * 100),
        line: if i == 12 {
            "the needle".into()
        } else {
            format!("line {i}")
        },
        try_no: 1,
    });
    app.update(Action::Net(Event::Lines {
        run: "01C".into(),
        workflow: Some("hello".into()),
        lines: lines.collect(),
        complete: false,
        earlier: false,
    }));
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "NEEDLE");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.logs.found, Some(11));
    insta::assert_snapshot!(render(&mut app, 100, 20));
    key(&mut app, KeyCode::Char('s'));
    key(&mut app, KeyCode::Char('s'));
    assert_eq!(app.logs.len(), 3, "stderr only");
    key(&mut app, KeyCode::Char('G'));
    assert!(app.logs.follow);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Runs, "Esc goes back");
}

#[test]
fn agents_schedules_principal_and_query_views() {
    let mut app = app();
    key(&mut app, KeyCode::Char('4'));
    insta::assert_snapshot!("agents", render(&mut app, 100, 12));
    let commands = key(&mut app, KeyCode::Char('5'));
    assert_eq!(
        commands,
        vec![Command::WatchSchedule(Some("etl.daily".into()))]
    );
    app.update(Action::Net(Event::Slots(
        "etl.daily".into(),
        vec![SlotRecord {
            workflow_id: WorkflowId::new("etl.daily"),
            slot: at(0),
            fate: SlotFate::Fired,
            run_id: Some(RunId::new("01A")),
            note: None,
            recorded_at: at(0),
        }],
    )));
    insta::assert_snapshot!("schedules", render(&mut app, 100, 14));
    key(&mut app, KeyCode::Char('6'));
    insta::assert_snapshot!("principal", render(&mut app, 90, 20));
    key(&mut app, KeyCode::Char('7'));
    insta::assert_snapshot!("query_saved", render(&mut app, 100, 12));
    key(&mut app, KeyCode::Char(':'));
    keys(
        &mut app,
        "query SELECT status, count(*) AS n FROM runs GROUP BY ALL",
    );
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        vec![Command::Query(
            "SELECT status, count(*) AS n FROM runs GROUP BY ALL".into()
        )]
    );
    app.update(Action::Net(Event::Query(Ok(QueryResult {
        columns: vec![
            QueryColumn {
                name: "status".into(),
                kind: "VARCHAR".into(),
            },
            QueryColumn {
                name: "n".into(),
                kind: "BIGINT".into(),
            },
        ],
        rows: vec![
            vec!["COMPLETED".into(), 41.into()],
            vec!["FAILED".into(), 2.into()],
        ],
        elapsed_ms: 3,
    }))));
    insta::assert_snapshot!("query_result", render(&mut app, 60, 10));
    app.update(Action::Net(Event::Query(Err(
        "principal refused the request: only SELECT queries are allowed".into(),
    ))));
    let text = render(&mut app, 80, 10);
    assert!(text.contains("only SELECT"), "{text}");
}

mod actions;
