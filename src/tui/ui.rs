//! Drawing: reads the [`App`], changes nothing.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::App;
use crate::cli::format::{clock, duration};
use crate::model::{RunStatus, TaskStatus};

fn run_colour(s: RunStatus) -> Color {
    match s {
        RunStatus::Queued => Color::Gray,
        RunStatus::Running => Color::Cyan,
        RunStatus::Completed => Color::Green,
        RunStatus::Failed | RunStatus::Crashed => Color::Red,
        RunStatus::Cancelled => Color::Yellow,
    }
}

fn task_colour(s: TaskStatus) -> Color {
    match s {
        TaskStatus::Pending | TaskStatus::Skipped => Color::Gray,
        TaskStatus::Running => Color::Cyan,
        TaskStatus::Retrying => Color::Magenta,
        TaskStatus::Completed | TaskStatus::Reused => Color::Green,
        TaskStatus::Failed | TaskStatus::Crashed => Color::Red,
        TaskStatus::Cancelled => Color::Yellow,
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(8),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, app, header);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(body);
    let [runs, tasks] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(left);
    draw_runs(frame, app, runs);
    draw_tasks(frame, app, tasks);
    draw_agents(frame, app, right);
    frame.render_widget(
        Paragraph::new("q quit  j/k or ↑/↓ select run  g first run  r refresh")
            .style(Style::default().fg(Color::DarkGray)),
        footer,
    );
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let line = match (&app.snapshot, &app.error) {
        (_, Some(e)) => Line::from(Span::styled(e.clone(), Style::default().fg(Color::Red))),
        (Some(s), None) => {
            let st = &s.status;
            Line::from(format!(
                "v{}  up {}s  workflows {} ({} invalid)  queue {}  running {}  agents {}/{}  store {}",
                st.version,
                st.uptime_secs,
                st.workflows_loaded,
                st.workflows_invalid,
                st.queue_length,
                st.runs_active,
                st.agents_alive,
                st.agents_total,
                st.store
            ))
        }
        (None, None) => Line::from("connecting..."),
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" cdktr · {} ", app.endpoint));
    frame.render_widget(Paragraph::new(line).block(block), area);
}

fn draw_runs(frame: &mut Frame, app: &App, area: Rect) {
    let rows: Vec<Row> = app
        .snapshot
        .iter()
        .flat_map(|s| s.runs.iter())
        .enumerate()
        .map(|(i, r)| {
            let style = if i == app.selected {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            Row::new(vec![
                Cell::from(r.workflow_id.to_string()),
                Cell::from(r.status.as_str()).style(Style::default().fg(run_colour(r.status))),
                Cell::from(r.trigger.to_string()),
                Cell::from(clock(&Some(r.queued_at))),
                Cell::from(duration(&r.started_at, &r.finished_at)),
            ])
            .style(style)
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Percentage(30),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(19),
            Constraint::Length(9),
        ],
    )
    .header(
        Row::new(["WORKFLOW", "STATUS", "TRIGGER", "QUEUED (UTC)", "TOOK"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::default().borders(Borders::ALL).title(" Runs "));
    frame.render_widget(table, area);
}

fn draw_tasks(frame: &mut Frame, app: &App, area: Rect) {
    let detail = app.snapshot.as_ref().and_then(|s| s.detail.as_ref());
    let title = match detail {
        Some(d) => format!(
            " Tasks of {} ({}) ",
            d.summary.run_id, d.summary.workflow_id
        ),
        None => " Tasks ".into(),
    };
    let rows: Vec<Row> = detail
        .iter()
        .flat_map(|d| d.tasks.iter())
        .map(|t| {
            Row::new(vec![
                Cell::from(t.task_id.to_string()),
                Cell::from(t.status.as_str()).style(Style::default().fg(task_colour(t.status))),
                Cell::from(duration(&t.started_at, &t.finished_at)),
                Cell::from(
                    t.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
                Cell::from(t.reason.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Percentage(25),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["TASK", "STATUS", "TOOK", "EXIT", "NOTE"])
            .style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::default().borders(Borders::ALL).title(title));
    frame.render_widget(table, area);
}

fn draw_agents(frame: &mut Frame, app: &App, area: Rect) {
    let rows: Vec<Row> = app
        .snapshot
        .iter()
        .flat_map(|s| s.agents.iter())
        .map(|a| {
            let colour = if a.state == crate::model::AgentState::Alive {
                Color::Green
            } else {
                Color::Red
            };
            Row::new(vec![
                Cell::from(a.agent_id.to_string()),
                Cell::from(a.state.to_string()).style(Style::default().fg(colour)),
                Cell::from(format!("{}/{}", a.running, a.slots)),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(12),
            Constraint::Length(6),
            Constraint::Length(6),
        ],
    )
    .header(
        Row::new(["AGENT", "STATE", "BUSY"]).style(Style::default().add_modifier(Modifier::BOLD)),
    )
    .block(Block::default().borders(Borders::ALL).title(" Agents "));
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::model::{AgentId, RunId, TaskId, WorkflowId};
    use crate::protocol::control::{AgentView, RunDetail, RunSummary, StatusView, TaskRunView};
    use crate::tui::{Action, Snapshot};

    fn at(s: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 20, 9, 30, s)
            .single()
            .unwrap()
    }

    fn snapshot() -> Snapshot {
        let run = |id: &str, wf: &str, status: RunStatus| RunSummary {
            rerun_of: None,
            run_id: RunId::new(id),
            workflow_id: WorkflowId::new(wf),
            status,
            trigger: crate::model::TriggerSource::Cli,
            queued_at: at(0),
            started_at: Some(at(1)),
            finished_at: Some(at(4)),
            agent: Some(AgentId::new("worker@host")),
            attempt: 1,
            triggered_by: None,
        };
        let runs = vec![
            run("01B", "etl.daily", RunStatus::Failed),
            run("01A", "hello", RunStatus::Completed),
        ];
        let task =
            |id: &str, status: TaskStatus, exit: Option<i32>, reason: Option<&str>| TaskRunView {
                try_no: 1,
                tries: Vec::new(),
                task_id: TaskId::new(id),
                status,
                started_at: (status != TaskStatus::Skipped).then(|| at(1)),
                finished_at: Some(at(3)),
                exit_code: exit,
                attempt: 1,
                reason: reason.map(str::to_owned),
            };
        Snapshot {
            status: StatusView {
                version: "0.1.0".into(),
                protocol: 1,
                uptime_secs: 42,
                workflows_loaded: 4,
                workflows_invalid: 1,
                queue_length: 0,
                runs_active: 0,
                agents_alive: 1,
                agents_total: 2,
                logs_publish: "tcp://127.0.0.1:5563".into(),
                logs_publish_local: None,
                store: "ok".into(),
            },
            detail: Some(RunDetail {
                summary: runs[0].clone(),
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
            }),
            runs,
            agents: vec![
                AgentView {
                    agent_id: AgentId::new("worker@host"),
                    host: "host".into(),
                    slots: 5,
                    running: 0,
                    ready_slots: 5,
                    state: crate::model::AgentState::Alive,
                    registered_at: at(0),
                    last_heartbeat: at(5),
                    version: "0.1.0".into(),
                    labels: Default::default(),
                },
                AgentView {
                    agent_id: AgentId::new("old@host"),
                    host: "host".into(),
                    slots: 1,
                    running: 0,
                    ready_slots: 0,
                    state: crate::model::AgentState::Lost,
                    registered_at: at(0),
                    last_heartbeat: at(0),
                    version: "0.1.0".into(),
                    labels: Default::default(),
                },
            ],
        }
    }

    fn render(app: &App) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(110, 22)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        terminal
    }

    #[test]
    fn renders_status_runs_tasks_and_agents() {
        let mut app = App::new("tcp://127.0.0.1:5561".into());
        assert!(!app.update(Action::Loaded(Box::new(Ok(snapshot())))));
        insta::assert_snapshot!(render(&app).backend());
    }

    #[test]
    fn shows_an_unreachable_principal() {
        let mut app = App::new("tcp://127.0.0.1:5561".into());
        app.update(Action::Loaded(Box::new(Err(
            "cannot reach principal at tcp://127.0.0.1:5561: no reply within 5s".into(),
        ))));
        let text = render(&app).backend().to_string();
        assert!(text.contains("cannot reach principal"), "{text}");
    }

    #[test]
    fn keys_move_the_selection_and_quit() {
        use ratatui::crossterm::event::KeyCode;
        let mut app = App::new("x".into());
        app.update(Action::Loaded(Box::new(Ok(snapshot()))));
        assert!(app.update(Action::Key(KeyCode::Char('j'))));
        assert_eq!(app.selected_run_id().as_deref(), Some("01A"));
        app.update(Action::Key(KeyCode::Down));
        assert_eq!(app.selected, 1, "stays on the last run");
        // A refresh with a new run on top keeps the same run selected.
        let mut fresh = snapshot();
        let mut newer = fresh.runs[0].clone();
        newer.run_id = RunId::new("01C");
        fresh.runs.insert(0, newer);
        app.update(Action::Loaded(Box::new(Ok(fresh))));
        assert_eq!(app.selected_run_id().as_deref(), Some("01A"));
        app.update(Action::Key(KeyCode::Char('q')));
        assert!(app.quit);
    }
}
