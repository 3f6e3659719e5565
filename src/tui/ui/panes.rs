//! The logs, principal and query views, and the trigger form.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{block, bold, centred, clock, fg, scroll_start, selected};
use crate::protocol::agent::Stream;
use crate::tui::app::{App, View};
use crate::tui::form::Form;

pub fn logs(frame: &mut Frame, app: &App, area: Rect) {
    let logs = &app.logs;
    let height = area.height.saturating_sub(2) as usize;
    let Some(run) = &logs.run else {
        frame.render_widget(
            Paragraph::new("No run followed: select a run and press l, or type :logs RUN")
                .block(block(" Logs ".into(), true)),
            area,
        );
        return;
    };
    let first = logs.first_visible(height);
    let needle = logs.search.as_ref().map(|s| s.to_lowercase());
    let lines: Vec<Line> = (first..logs.len().min(first + height))
        .filter_map(|i| logs.get(i).map(|l| (i, l)))
        .map(|(i, l)| {
            let mut spans = vec![
                Span::styled(format!("{} ", clock(app, l.ts)), fg(app, Color::DarkGray)),
                Span::styled(format!("{:<10} ", l.task_id), fg(app, Color::Cyan)),
            ];
            let text = Span::raw(l.line.clone());
            let text = if l.stream == Stream::Stderr {
                text.style(fg(app, Color::Red))
            } else {
                text
            };
            spans.push(text);
            let hit = needle
                .as_ref()
                .is_some_and(|n| !n.is_empty() && l.line.to_lowercase().contains(n));
            let line = Line::from(spans);
            if logs.found == Some(i) {
                line.style(selected())
            } else if hit {
                line.style(Style::default().add_modifier(Modifier::UNDERLINED))
            } else {
                line
            }
        })
        .collect();
    let stream = match logs.stream {
        None => "out+err",
        Some(Stream::Stdout) => "stdout only",
        Some(Stream::Stderr) => "stderr only",
    };
    let state = if logs.complete {
        "ended"
    } else if logs.follow {
        "following"
    } else {
        "paused (G follows)"
    };
    let dropped = match (logs.earlier, logs.later) {
        (_, true) => " · G: back to the end",
        (true, _) if logs.loading => " · loading earlier lines",
        (true, _) => " · ↑ earlier lines",
        _ => "",
    };
    let search = logs
        .search
        .as_ref()
        .map(|s| format!(" · /{s}"))
        .unwrap_or_default();
    let task = logs
        .task
        .as_ref()
        .map(|t| format!(" task {t} ·"))
        .unwrap_or_default();
    let title = format!(
        " {run} ({}) ·{task} {} lines · {stream} · {state}{search}{dropped} ",
        logs.workflow.as_deref().unwrap_or("?"),
        logs.len()
    );
    let mut paragraph = Paragraph::new(lines).block(block(title, true));
    if logs.wrap {
        paragraph = paragraph.wrap(Wrap { trim: false });
    }
    frame.render_widget(paragraph, area);
}

pub fn principal(frame: &mut Frame, app: &App, area: Rect) {
    let [top, logs] = Layout::vertical([Constraint::Length(11), Constraint::Min(3)]).areas(area);
    let [facts, problems] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let mut lines = Vec::new();
    match &app.data.status {
        Some(st) => {
            let fact = |k: &str, v: String| {
                Line::from(vec![
                    Span::styled(format!("{k:>11}  "), bold()),
                    Span::raw(v),
                ])
            };
            lines.push(fact("endpoint", app.endpoint.clone()));
            lines.push(fact(
                "version",
                format!("{} (protocol {})", st.version, st.protocol),
            ));
            lines.push(fact("uptime", super::uptime(st.uptime_secs)));
            lines.push(fact(
                "queue",
                format!("{} waiting, {} running", st.queue_length, st.runs_active),
            ));
            lines.push(fact(
                "agents",
                format!("{} alive of {}", st.agents_alive, st.agents_total),
            ));
            lines.push(fact(
                "workflows",
                format!(
                    "{} loaded, {} invalid",
                    st.workflows_loaded, st.workflows_invalid
                ),
            ));
            let store = Span::styled(
                st.store.clone(),
                fg(
                    app,
                    if st.store == "ok" {
                        Color::Green
                    } else {
                        Color::Red
                    },
                ),
            );
            lines.push(Line::from(vec![
                Span::styled(format!("{:>11}  ", "store"), bold()),
                store,
            ]));
            lines.push(fact("stream", st.logs_publish.clone()));
            lines.push(fact(
                "credential",
                app.data.role.map_or("-".into(), |r| r.to_string()),
            ));
        }
        None => lines.push(Line::from("no answer from the principal yet")),
    }
    frame.render_widget(
        Paragraph::new(lines).block(block(" Principal ".into(), true)),
        facts,
    );
    let [warnings, own] = if app.own_log {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(logs)
    } else {
        [logs, Rect::default()]
    };
    let shown = warnings.height.saturating_sub(2) as usize;
    let recent: Vec<Line> = app
        .data
        .warnings
        .iter()
        .rev()
        .take(shown)
        .rev()
        .map(|n| {
            let colour = if n.level == "error" {
                Color::Red
            } else {
                Color::Yellow
            };
            Line::from(vec![
                Span::styled(
                    format!("{} {:<5} ", clock(app, n.at), n.level),
                    fg(app, colour),
                ),
                Span::raw(n.message.clone()),
            ])
        })
        .collect();
    let title = format!(" Principal warnings ({}) ", app.data.warnings.len());
    frame.render_widget(Paragraph::new(recent).block(block(title, false)), warnings);
    if app.own_log {
        frame.render_widget(
            tui_logger::TuiLoggerWidget::default()
                .output_timestamp(Some("%H:%M:%S".into()))
                .output_target(false)
                .output_file(false)
                .output_line(false)
                .block(block(" Cockpit log ".into(), false)),
            own,
        );
    }
    let mut problems_text: Vec<Line> = Vec::new();
    for f in app.data.workflows.iter().flat_map(|l| l.invalid.iter()) {
        let kept = if f.previous_version_active {
            " (its last valid version stays active)"
        } else {
            ""
        };
        problems_text.push(Line::from(Span::styled(
            format!("{}{kept}", f.file.display()),
            fg(app, Color::Red),
        )));
        for e in &f.errors {
            problems_text.push(Line::from(format!("  {e}")));
        }
    }
    if problems_text.is_empty() {
        problems_text.push(Line::from("every workflow file is valid"));
    }
    frame.render_widget(
        Paragraph::new(problems_text)
            .wrap(Wrap { trim: false })
            .block(block(" Reload errors ".into(), false)),
        problems,
    );
}

/// Saved queries, shown while no result is.
pub const SAVED: &[(&str, &str)] = &[
    (
        "failures today",
        "SELECT workflow_id, run_id, status, finished_at FROM runs WHERE status IN ('FAILED', 'CRASHED') AND queued_at >= current_date ORDER BY queued_at DESC",
    ),
    (
        "slowest tasks (7 days)",
        "SELECT workflow_id, task_id, max(finished_at - started_at) AS longest FROM task_runs WHERE started_at >= now() - INTERVAL 7 DAY GROUP BY ALL ORDER BY longest DESC LIMIT 20",
    ),
];

pub fn query(frame: &mut Frame, app: &App, area: Rect) {
    match &app.data.query {
        None => {
            let mut lines = vec![
                Line::from("Type :query SELECT ... (read-only, the same limits as `cdktr query`)."),
                Line::from(""),
                Line::from(Span::styled("saved queries", bold())),
            ];
            for (name, sql) in SAVED {
                lines.push(Line::from(format!("{name}:  :query {sql}")));
            }
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: false })
                    .block(block(" Query ".into(), true)),
                area,
            );
        }
        Some(Err(e)) => frame.render_widget(
            Paragraph::new(Span::styled(e.clone(), fg(app, Color::Red)))
                .wrap(Wrap { trim: false })
                .block(block(" Query refused ".into(), true)),
            area,
        ),
        Some(Ok(result)) => {
            let height = area.height.saturating_sub(3) as usize;
            let at = app.selection(View::Query);
            let start = scroll_start(at, height);
            let rows: Vec<Row> = result
                .rows
                .iter()
                .enumerate()
                .skip(start)
                .take(height)
                .map(|(i, r)| {
                    let row = Row::new(r.iter().map(|v| Cell::from(value_text(v))));
                    if i == at {
                        row.style(selected())
                    } else {
                        row
                    }
                })
                .collect();
            let widths: Vec<Constraint> =
                result.columns.iter().map(|_| Constraint::Fill(1)).collect();
            let header = Row::new(result.columns.iter().map(|c| c.name.clone())).style(bold());
            let title = format!(
                " Query · {} rows · {} ms ",
                result.rows.len(),
                result.elapsed_ms
            );
            frame.render_widget(
                Table::new(rows, widths)
                    .header(header)
                    .block(block(title, true)),
                area,
            );
        }
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "NULL".into(),
        other => other.to_string(),
    }
}

pub fn form(frame: &mut Frame, app: &App, form: &Form) {
    let mut lines = Vec::new();
    if form.fields.is_empty() {
        lines.push(Line::from("no parameters"));
    }
    for (i, f) in form.fields.iter().enumerate() {
        let label = Span::styled(format!("{:>14} ", f.name), bold());
        let value = Span::styled(
            format!("[{}]", f.input.text),
            if i == form.focus {
                selected()
            } else {
                Style::default()
            },
        );
        lines.push(Line::from(vec![label, value]));
        let note = match &f.error {
            Some(e) => Span::styled(format!("{:>15}{e}", ""), fg(app, Color::Red)),
            None => Span::styled(format!("{:>15}{}", "", f.hint), fg(app, Color::DarkGray)),
        };
        lines.push(Line::from(note));
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Tab/↓ next field · Enter trigger · Esc cancel"));
    let area = centred(frame, 72, lines.len() as u16 + 2);
    if let Some(f) = form.fields.get(form.focus) {
        let row = area.y + 1 + 2 * form.focus as u16;
        frame.set_cursor_position((area.x + 17 + f.input.cursor as u16, row));
    }
    let title = format!(" trigger {} ", form.workflow.id);
    frame.render_widget(Paragraph::new(lines).block(block(title, true)), area);
}
