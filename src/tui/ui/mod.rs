//! Drawing: reads the [`App`], changes nothing (except remembering the body's height for
//! paging). One header line (the principal, or how long it has been unreachable), the view
//! tabs, the view, and a status line that also holds the `:`, `/` prompts.

mod dag;
mod lists;
mod panes;
mod workflows;

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Conn, Overlay, View};
use super::keys::HELP;
use crate::cli::format::{in_zone, DATE_TIME};
use crate::model::{RunStatus, TaskStatus};

pub fn draw(frame: &mut Frame, app: &mut App) {
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    // Borders and a table header take three lines of the body.
    app.page = body.height.saturating_sub(3).max(1) as usize;
    let app = &*app;
    draw_header(frame, app, header);
    draw_tabs(frame, app, tabs);
    match app.view {
        View::Workflows => workflows::workflows(frame, app, body),
        View::Runs => lists::runs(frame, app, body),
        View::Agents => lists::agents(frame, app, body),
        View::Schedules => lists::schedules(frame, app, body),
        View::Logs => panes::logs(frame, app, body),
        View::Principal => panes::principal(frame, app, body),
        View::Query => panes::query(frame, app, body),
    }
    draw_footer(frame, app, footer);
    match &app.overlay {
        Some(Overlay::Help) => help(frame, app),
        Some(Overlay::Form(form)) => panes::form(frame, app, form),
        Some(Overlay::Confirm { question, .. }) => confirm(frame, app, question),
        _ => {}
    }
}

/// A foreground colour, or none without colours.
pub fn fg(app: &App, colour: Color) -> Style {
    if app.colour {
        Style::default().fg(colour)
    } else {
        Style::default()
    }
}

pub fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

/// The selection: reversed, which reads on dark and light terminals and without colour.
pub fn selected() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub fn run_colour(s: RunStatus) -> Color {
    match s {
        RunStatus::Queued => Color::Blue,
        RunStatus::Running => Color::Cyan,
        RunStatus::Completed => Color::Green,
        RunStatus::Failed | RunStatus::Crashed => Color::Red,
        RunStatus::Cancelled => Color::Yellow,
    }
}

pub fn task_colour(s: TaskStatus) -> Color {
    match s {
        TaskStatus::Pending | TaskStatus::Skipped => Color::Blue,
        TaskStatus::Running => Color::Cyan,
        TaskStatus::Retrying => Color::Magenta,
        TaskStatus::Completed | TaskStatus::Reused => Color::Green,
        TaskStatus::Failed | TaskStatus::Crashed => Color::Red,
        TaskStatus::Cancelled => Color::Yellow,
    }
}

/// `2026-12-07 09:30:00` in the cockpit's zone.
pub fn time(app: &App, t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".into(), |t| in_zone(t, app.local, DATE_TIME))
}

/// `09:30:00`, the time of day only.
pub fn clock(app: &App, t: DateTime<Utc>) -> String {
    in_zone(t, app.local, "%H:%M:%S")
}

/// How long from `start` to `end` (to now while it runs).
pub fn took(app: &App, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match start {
        None => "-".into(),
        Some(s) => human((end.unwrap_or(app.now) - s).num_milliseconds()),
    }
}

/// `850ms`, `4.2s`, `3m05s`, `2h10m`.
pub fn human(ms: i64) -> String {
    match ms {
        3_600_000.. => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
        _ => crate::cli::format::format_ms(ms),
    }
}

/// `42s`, `3m05s`, `2h10m`, `3d04h`.
pub fn uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs / 3600 % 24),
    }
}

/// A bordered block with a title.
pub fn block(title: String, focused: bool) -> Block<'static> {
    let block = Block::default().borders(Borders::ALL).title(title);
    if focused {
        block.border_style(bold())
    } else {
        block
    }
}

/// The column width that fits `n` rows' selection in view: the first row index drawn so
/// that `selected` is visible in `height` rows.
pub fn scroll_start(selected: usize, height: usize) -> usize {
    selected.saturating_sub(height.saturating_sub(1))
}

fn draw_header(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![
        Span::styled(" cdktr ", bold()),
        Span::raw(format!("{} ", app.endpoint)),
    ];
    match (&app.conn, &app.data.status) {
        (Conn::Lost { error, .. }, _) => {
            let secs = app.lost_for().map_or(0, |d| d.as_secs());
            spans.push(Span::styled(
                format!("reconnecting ({secs}s): {error}"),
                fg(app, Color::Red),
            ));
        }
        (_, Some(st)) => {
            let store = if st.store == "ok" {
                Span::raw("store ok")
            } else {
                Span::styled(format!("store {}", st.store), fg(app, Color::Red))
            };
            spans.push(Span::raw(format!(
                "· {} · up {} · queue {} · running {} · agents {}/{} · ",
                st.version,
                uptime(st.uptime_secs),
                st.queue_length,
                st.runs_active,
                st.agents_alive,
                st.agents_total
            )));
            spans.push(store);
            if let Some(role) = app.data.role {
                spans.push(Span::raw(format!(" · {role}")));
            }
        }
        (_, None) => spans.push(Span::raw("connecting...")),
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_tabs(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    for (i, view) in View::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, view.title());
        spans.push(if *view == app.view {
            Span::styled(label, selected().add_modifier(Modifier::BOLD))
        } else {
            Span::raw(label)
        });
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_footer(frame: &mut Frame, app: &App, area: Rect) {
    let mut prompt = |sign: &str, input: &super::form::Input| {
        frame.set_cursor_position((
            area.x + (sign.chars().count() + input.cursor) as u16,
            area.y,
        ));
        Line::from(format!("{sign}{}", input.text))
    };
    let line = match &app.overlay {
        Some(Overlay::Command(input)) => prompt(":", input),
        Some(Overlay::Filter(input)) => prompt("/", input),
        Some(Overlay::Search(input)) => prompt("search: ", input),
        Some(Overlay::JumpTime(input)) => prompt("jump to time (HH:MM[:SS]): ", input),
        _ => match &app.message {
            Some(m) if m.error => Line::from(Span::styled(m.text.clone(), fg(app, Color::Red))),
            Some(m) => Line::from(Span::styled(m.text.clone(), fg(app, Color::Green))),
            None => Line::from(Span::styled(hints(app.view), fg(app, Color::DarkGray))),
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hints(view: View) -> &'static str {
    match view {
        View::Workflows => {
            "? help  : command  / filter  Enter runs/fold  r trigger  p pause  q quit"
        }
        View::Runs => {
            "? help  / filter  Enter tasks  l logs  c cancel  R rerun  F rerun failed  y copy"
        }
        View::Logs => "? help  / search  n N next  s stream  w wrap  t time  G follow  Esc back",
        View::Agents => "? help  / filter  Enter runs on the agent  : command  q quit",
        View::Schedules => "? help  / filter  p pause/resume  r trigger  Enter runs  q quit",
        View::Principal => "? help  : command  Ctrl-R reload workflows  q quit",
        View::Query => ": query SELECT ...  j k scroll  ? help  q quit",
    }
}

/// A box of `width` x `height` in the middle of the screen, cleared.
pub fn centred(frame: &mut Frame, width: u16, height: u16) -> Rect {
    let area = frame.area();
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    frame.render_widget(Clear, cell);
    cell
}

fn help(frame: &mut Frame, app: &App) {
    let rows: Vec<Line> = HELP
        .iter()
        .filter(|(_, _, views)| views.is_empty() || views.contains(&app.view))
        .map(|(keys, what, _)| {
            let mut spans = vec![
                Span::styled(format!("{keys:>9}  "), bold()),
                Span::raw(*what),
            ];
            let refused = super::keys::needs(keys)
                .zip(app.data.role)
                .filter(|(allowed, role)| !allowed.contains(role));
            if let Some((_, role)) = refused {
                spans.push(Span::styled(
                    format!("  (disabled: a {role} credential may not)"),
                    fg(app, Color::DarkGray),
                ));
            }
            Line::from(spans)
        })
        .collect();
    let area = centred(frame, 96, rows.len() as u16 + 2);
    let title = format!(" keys of the {} view (any key closes) ", app.view.title());
    frame.render_widget(
        Paragraph::new(rows)
            .wrap(Wrap { trim: false })
            .block(block(title, true)),
        area,
    );
}

fn confirm(frame: &mut Frame, app: &App, question: &str) {
    let area = centred(frame, question.chars().count() as u16 + 6, 3);
    frame.render_widget(
        Paragraph::new(Span::styled(question.to_owned(), fg(app, Color::Yellow)))
            .block(block(" confirm ".into(), true)),
        area,
    );
}

#[cfg(test)]
mod tests;
