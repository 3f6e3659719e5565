//! The list views: runs (list and detail), agents, schedules, and the table they share.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{block, bold, fg, run_colour, scroll_start, selected, task_colour, time, took};
use crate::model::AgentState;
use crate::tui::app::{App, Pane, View};

/// A table of `len` rows made by `make` (only those in view are made), with the selected one
/// reversed and kept in view.
#[allow(clippy::too_many_arguments)]
pub(super) fn table<'a>(
    app: &App,
    view: View,
    header: &[&'a str],
    widths: &[Constraint],
    len: usize,
    make: impl Fn(usize) -> Row<'a>,
    title: String,
    area: Rect,
) -> Table<'a> {
    let height = area.height.saturating_sub(3) as usize;
    let at = app.selection(view);
    let start = scroll_start(at, height);
    let rows: Vec<Row> = (start..len.min(start + height))
        .map(|i| {
            if i == at {
                make(i).style(selected())
            } else {
                make(i)
            }
        })
        .collect();
    let filter = app
        .filters
        .get(&view)
        .map(|f| format!(" /{f}"))
        .unwrap_or_default();
    Table::new(rows, widths.to_vec())
        .header(Row::new(header.to_vec()).style(bold()))
        .block(block(format!("{title}{filter} "), app.pane == Pane::List))
}

/// `items` without those at the indices `drop` (highest first): the columns a narrow
/// terminal leaves out, taken from the header, the widths and every row alike.
pub(super) fn without<T>(mut items: Vec<T>, drop: &[usize]) -> Vec<T> {
    for i in drop {
        items.remove(*i);
    }
    items
}

pub fn runs(frame: &mut Frame, app: &App, area: Rect) {
    let [list, detail] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let runs = app.visible_runs();
    // Below 110 columns the trigger and the agent are left out (the detail has them).
    let drop: &[usize] = if list.width >= 110 { &[] } else { &[6, 2] };
    let make = |i: usize| {
        let r = runs[i];
        Row::new(without(
            vec![
                Cell::from(r.workflow_id.to_string()),
                Cell::from(r.run_id.to_string()),
                Cell::from(r.trigger.to_string()),
                Cell::from(r.status.as_str()).style(fg(app, run_colour(r.status))),
                Cell::from(time(app, r.started_at.or(Some(r.queued_at)))),
                Cell::from(took(app, r.started_at, r.finished_at)),
                Cell::from(
                    r.agent
                        .as_ref()
                        .map_or_else(|| "-".into(), |a| a.to_string()),
                ),
            ],
            drop,
        ))
    };
    let started = if app.local {
        "STARTED"
    } else {
        "STARTED (UTC)"
    };
    let header = without(
        vec![
            "WORKFLOW", "RUN", "TRIGGER", "STATUS", started, "TOOK", "AGENT",
        ],
        drop,
    );
    let widths = without(
        vec![
            Constraint::Fill(2),
            Constraint::Length(26),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(19),
            Constraint::Length(7),
            Constraint::Fill(1),
        ],
        drop,
    );
    let t = table(
        app,
        View::Runs,
        &header,
        &widths,
        runs.len(),
        make,
        format!(" Runs ({} of {})", runs.len(), app.data.runs.len()),
        list,
    );
    frame.render_widget(t, list);
    run_detail(frame, app, detail);
}

fn run_detail(frame: &mut Frame, app: &App, area: Rect) {
    let detail = app.data.detail.as_ref();
    // With room, the run's DAG beside its tasks, coloured live (the workflow as loaded now).
    let workflow = detail.and_then(|d| {
        let listing = app.data.workflows.as_ref()?;
        listing
            .workflows
            .iter()
            .find(|w| w.id == d.summary.workflow_id)
    });
    let area = match workflow {
        Some(w) if area.width >= 130 => {
            let [table, dag] =
                Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                    .areas(area);
            let (width, height) = (dag.width.saturating_sub(2), dag.height.saturating_sub(2));
            let lines = super::workflows::dag_lines(app, w, detail, width, height as usize);
            frame.render_widget(
                Paragraph::new(lines).block(block(" DAG ".into(), false)),
                dag,
            );
            table
        }
        _ => area,
    };
    let title = match detail {
        Some(d) => format!(
            " {} {} · {} · {} ",
            d.summary.workflow_id,
            d.summary.run_id,
            d.summary.status.as_str(),
            took(app, d.summary.started_at, d.summary.finished_at)
        ),
        None => " Run ".into(),
    };
    let height = area.height.saturating_sub(3) as usize;
    let start = scroll_start(app.task, height);
    let rows: Vec<Row> = detail
        .iter()
        .flat_map(|d| d.tasks.iter())
        .enumerate()
        .skip(start)
        .take(height)
        .map(|(i, t)| {
            let row = Row::new(vec![
                Cell::from(t.task_id.to_string()),
                Cell::from(t.status.as_str()).style(fg(app, task_colour(t.status))),
                Cell::from(t.try_no.to_string()),
                Cell::from(t.exit_code.map_or_else(|| "-".into(), |c| c.to_string())),
                Cell::from(took(app, t.started_at, t.finished_at)),
                Cell::from(t.reason.clone().unwrap_or_default()),
            ]);
            if app.pane == Pane::Detail && i == app.task {
                row.style(selected())
            } else {
                row
            }
        })
        .collect();
    let t = Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(10),
            Constraint::Length(3),
            Constraint::Length(4),
            Constraint::Length(7),
            Constraint::Fill(2),
        ],
    )
    .header(Row::new(["TASK", "STATUS", "TRY", "EXIT", "TOOK", "REASON"]).style(bold()))
    .block(block(title, app.pane == Pane::Detail));
    frame.render_widget(t, area);
}

pub fn agents(frame: &mut Frame, app: &App, area: Rect) {
    let agents = app.visible_agents();
    let make = |i: usize| {
        let a = agents[i];
        let colour = match a.state {
            AgentState::Alive => Color::Green,
            AgentState::Lost => Color::Red,
            _ => Color::Yellow,
        };
        let age = (app.now - a.last_heartbeat).num_milliseconds();
        let labels: Vec<String> = a
            .labels
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        let row = Row::new(vec![
            Cell::from(a.agent_id.to_string()),
            Cell::from(a.state.to_string()).style(fg(app, colour)),
            Cell::from(format!("{} ago", super::human(age))),
            Cell::from(format!("{}/{}", a.running, a.slots)),
            Cell::from(a.spool_depth.to_string()),
            Cell::from(labels.join(",")),
            Cell::from(a.version.clone()),
        ]);
        if a.state == AgentState::Lost {
            row.style(fg(app, Color::Red))
        } else {
            row
        }
    };
    let t = table(
        app,
        View::Agents,
        &[
            "AGENT",
            "STATE",
            "HEARTBEAT",
            "SLOTS",
            "SPOOL",
            "LABELS",
            "VERSION",
        ],
        &[
            Constraint::Fill(2),
            Constraint::Length(6),
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Fill(1),
            Constraint::Length(8),
        ],
        agents.len(),
        make,
        format!(" Agents ({})", agents.len()),
        area,
    );
    frame.render_widget(t, area);
}

pub fn schedules(frame: &mut Frame, app: &App, area: Rect) {
    let [list, slots] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let schedules = app.visible_schedules();
    let make = |i: usize| {
        let s = schedules[i];
        Row::new(vec![
            Cell::from(s.workflow_id.to_string()),
            Cell::from(s.cron.clone()),
            Cell::from(s.timezone.clone()),
            Cell::from(time(app, s.next_fire)),
            Cell::from(if s.paused { "paused" } else { "active" }).style(fg(
                app,
                if s.paused {
                    Color::Yellow
                } else {
                    Color::Green
                },
            )),
            Cell::from(format!("{:?} {:?}", s.overlap, s.catchup).to_lowercase()),
        ])
    };
    let t = table(
        app,
        View::Schedules,
        &[
            "WORKFLOW",
            "CRON",
            "ZONE",
            "NEXT FIRE",
            "STATE",
            "OVERLAP CATCHUP",
        ],
        &[
            Constraint::Fill(2),
            Constraint::Length(18),
            Constraint::Length(10),
            Constraint::Length(19),
            Constraint::Length(7),
            Constraint::Fill(1),
        ],
        schedules.len(),
        make,
        format!(" Schedules ({})", schedules.len()),
        list,
    );
    frame.render_widget(t, list);
    let chosen = app.selected_schedule().map(|s| s.workflow_id.to_string());
    let history = app
        .data
        .slots
        .as_ref()
        .filter(|(w, _)| Some(w) == chosen.as_ref());
    let rows: Vec<Row> = history
        .iter()
        .flat_map(|(_, slots)| slots.iter())
        .take(slots.height.saturating_sub(3) as usize)
        .map(|s| {
            Row::new(vec![
                Cell::from(time(app, Some(s.slot))),
                Cell::from(s.fate.to_string()),
                Cell::from(s.run_id.as_ref().map_or("-".into(), |r| r.to_string())),
                Cell::from(s.note.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let t = Table::new(
        rows,
        [
            Constraint::Length(19),
            Constraint::Length(10),
            Constraint::Length(26),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(["SLOT", "FATE", "RUN", "NOTE"]).style(bold()))
    .block(block(
        format!(" Slots of {} ", chosen.unwrap_or_else(|| "-".into())),
        false,
    ));
    frame.render_widget(t, slots);
}
