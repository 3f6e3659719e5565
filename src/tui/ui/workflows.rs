//! The workflows view: the tree by folder with each workflow's schedule and recent results,
//! and the selected workflow's detail with its task DAG.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Wrap};
use ratatui::Frame;

use super::lists::{table, without};
use super::{block, bold, fg, run_colour, task_colour};
use crate::model::{RunStatus, Workflow};
use crate::tui::app::{App, View};
use crate::tui::tree::{self, Row as TreeRow};

/// The last results of a workflow, newest last, as coloured marks.
fn sparkline<'a>(
    app: &App,
    recent: &std::collections::HashMap<&str, Vec<RunStatus>>,
    workflow: &str,
) -> (Vec<Span<'a>>, Option<RunStatus>) {
    let mut recent = recent.get(workflow).cloned().unwrap_or_default();
    let last = recent.first().copied();
    recent.reverse();
    let marks = recent
        .into_iter()
        .map(|s| {
            let mark = match s {
                RunStatus::Completed => "▇",
                RunStatus::Failed | RunStatus::Crashed => "▁",
                _ => "▄",
            };
            Span::styled(mark, fg(app, run_colour(s)))
        })
        .collect();
    (marks, last)
}

pub fn workflows(frame: &mut Frame, app: &App, area: Rect) {
    let [list, detail] =
        Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(area);
    let rows_data = tree::rows(app);
    // Each workflow's last ten results, newest first, in one pass over the runs.
    let mut recent: std::collections::HashMap<&str, Vec<RunStatus>> = Default::default();
    for r in &app.data.runs {
        let statuses = recent.entry(r.workflow_id.as_str()).or_default();
        if statuses.len() < 10 {
            statuses.push(r.status);
        }
    }
    // Narrower than 70 columns the recent results are left out, than 50 the schedule too.
    let drop: &[usize] = match list.width {
        70.. => &[],
        50..70 => &[5],
        _ => &[5, 1],
    };
    let listing = app.data.workflows.as_ref();
    let make = |i: usize| match &rows_data[i] {
        TreeRow::Folder {
            path,
            depth,
            folded,
            count,
        } => {
            let name = path.rsplit('.').next().unwrap_or(path);
            let sign = if *folded { "▸" } else { "▾" };
            Row::new(vec![
                Cell::from(format!("{}{sign} {name}/ ({count})", "  ".repeat(*depth))),
                Cell::from(""),
            ])
        }
        TreeRow::Workflow { id, depth } => {
            let schedule = app
                .data
                .schedules
                .iter()
                .find(|s| s.workflow_id.as_str() == id);
            let (marks, last) = sparkline(app, &recent, id);
            let name = id.rsplit('.').next().unwrap_or(id);
            let broken = listing.is_some_and(|l| {
                l.invalid
                    .iter()
                    .any(|f| f.id.as_ref().is_some_and(|i| i.as_str() == id))
            });
            let mut label = vec![Span::raw(format!("{}{name}", "  ".repeat(*depth)))];
            if broken {
                label.push(Span::styled(" (file invalid)", fg(app, Color::Red)));
            }
            Row::new(without(
                vec![
                    Cell::from(Line::from(label)),
                    Cell::from(
                        schedule
                            .map(|s| s.cron.clone())
                            .unwrap_or_else(|| "-".into()),
                    ),
                    Cell::from(
                        schedule
                            .and_then(|s| s.next_fire)
                            .map_or("-".into(), |t| super::clock(app, t)),
                    ),
                    Cell::from(if schedule.is_some_and(|s| s.paused) {
                        "paused"
                    } else {
                        ""
                    }),
                    Cell::from(last.map_or("-", |s| s.as_str()))
                        .style(last.map_or_else(Default::default, |s| fg(app, run_colour(s)))),
                    Cell::from(Line::from(marks)),
                ],
                drop,
            ))
        }
        TreeRow::Invalid { index, depth } => {
            let file = listing.and_then(|l| l.invalid.get(*index));
            let name = file
                .and_then(|f| f.file.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Row::new(vec![
                Cell::from(format!("{}✗ {name}", "  ".repeat(*depth))).style(fg(app, Color::Red)),
                Cell::from("invalid: errors in the detail").style(fg(app, Color::Red)),
            ])
        }
    };
    let count = listing.map_or(0, |l| l.workflows.len());
    let invalid = listing.map_or(0, |l| l.invalid.len());
    let header = without(
        vec!["WORKFLOW", "SCHEDULE", "NEXT", "", "LAST", "RECENT"],
        drop,
    );
    let widths = without(
        vec![
            Constraint::Fill(1),
            Constraint::Length(16),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(10),
        ],
        drop,
    );
    let t = table(
        app,
        View::Workflows,
        &header,
        &widths,
        rows_data.len(),
        make,
        format!(" Workflows ({count}, {invalid} invalid)"),
        list,
    );
    frame.render_widget(t, list);
    let chosen = match rows_data.get(app.selection(View::Workflows)) {
        Some(TreeRow::Workflow { id, .. }) => {
            listing.and_then(|l| l.workflows.iter().find(|w| w.id.as_str() == id))
        }
        _ => None,
    };
    let text = match (chosen, rows_data.get(app.selection(View::Workflows))) {
        (Some(w), _) => workflow_detail(app, w, detail),
        (None, Some(TreeRow::Invalid { index, .. })) => listing
            .and_then(|l| l.invalid.get(*index))
            .map(|f| f.errors.iter().map(|e| Line::from(e.clone())).collect())
            .unwrap_or_default(),
        _ => vec![Line::from(
            "Enter folds a folder; select a workflow for its detail",
        )],
    };
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(block(" Detail ".into(), false)),
        detail,
    );
}

/// Description, file, params, policies and the task DAG as an indented tree coloured by the
/// last run's task states (when that run is the one in detail).
fn workflow_detail<'a>(app: &App, w: &Workflow, area: Rect) -> Vec<Line<'a>> {
    let mut lines = vec![Line::from(Span::styled(w.name.clone(), bold()))];
    if let Some(d) = &w.description {
        lines.push(Line::from(d.clone()));
    }
    lines.push(Line::from(format!("file: {}", w.file.display())));
    for (name, p) in &w.params {
        let default = p
            .default
            .as_deref()
            .map(|d| format!(" = {d}"))
            .unwrap_or_default();
        lines.push(Line::from(format!("param {name}{default}")));
    }
    let mut policy = format!("overlap {:?}, catchup {:?}", w.overlap, w.catchup).to_lowercase();
    if let Some(t) = &w.timeout {
        policy.push_str(&format!(", timeout {t}"));
    }
    if let Some(n) = w.max_active_runs {
        policy.push_str(&format!(", at most {n} at once"));
    }
    lines.push(Line::from(policy));
    lines.push(Line::from(Span::styled("tasks", bold())));
    let states = app
        .data
        .detail
        .as_ref()
        .filter(|d| d.summary.workflow_id == w.id);
    let room = (area.height as usize).saturating_sub(lines.len() + 2);
    lines.extend(dag_lines(
        app,
        w,
        states,
        area.width.saturating_sub(2),
        room,
    ));
    lines
}

/// A workflow's task DAG coloured and marked by `run`'s task states: boxes and edges when
/// they fit in `width` x `height`, else an indented tree (each task under its first
/// dependency).
pub(super) fn dag_lines(
    app: &App,
    w: &Workflow,
    run: Option<&crate::protocol::control::RunDetail>,
    width: u16,
    height: usize,
) -> Vec<Line<'static>> {
    let state_of = |id: &str| {
        run.and_then(|d| {
            d.tasks
                .iter()
                .find(|t| t.task_id.as_str() == id)
                .map(|t| t.status)
        })
    };
    // A mark for the state too, readable without colour.
    let label = |id: &str| match state_of(id) {
        Some(s) => (format!("{id} {}", mark(s)), fg(app, task_colour(s))),
        None => (id.to_owned(), Default::default()),
    };
    if let Some(drawn) = super::dag::boxes(w, width as usize, height, label) {
        return drawn;
    }
    let mut lines = Vec::new();
    // Roots first, each task under the task it depends on first.
    let mut stack: Vec<(usize, &crate::model::Task)> = w
        .tasks
        .iter()
        .filter(|t| t.depends.is_empty())
        .rev()
        .map(|t| (0, t))
        .collect();
    let mut drawn = std::collections::BTreeSet::new();
    while let Some((depth, task)) = stack.pop() {
        let again = !drawn.insert(task.id.as_str());
        let status = state_of(task.id.as_str());
        let mut spans = vec![Span::raw(format!("{}└ ", "  ".repeat(depth)))];
        spans.push(Span::styled(
            task.id.to_string(),
            status.map_or_else(Default::default, |s| fg(app, task_colour(s))),
        ));
        if let Some(s) = status {
            spans.push(Span::raw(format!(" {}", s.as_str())));
        }
        if task.depends.len() > 1 {
            let deps: Vec<&str> = task.depends.iter().map(|d| d.as_str()).collect();
            spans.push(Span::raw(format!(" (after {})", deps.join(", "))));
        }
        lines.push(Line::from(spans));
        if again {
            continue;
        }
        for child in w.tasks.iter().rev() {
            if child.depends.first() == Some(&task.id) {
                stack.push((depth + 1, child));
            }
        }
    }
    lines
}

/// A task state as one character: ✓ completed (or reused), ✗ failed or crashed, ● running,
/// ↻ retrying, ○ pending, ↷ skipped, ■ cancelled.
fn mark(s: crate::model::TaskStatus) -> char {
    use crate::model::TaskStatus as T;
    match s {
        T::Completed | T::Reused => '✓',
        T::Failed | T::Crashed => '✗',
        T::Running => '●',
        T::Retrying => '↻',
        T::Pending => '○',
        T::Skipped => '↷',
        T::Cancelled => '■',
    }
}
