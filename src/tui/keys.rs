//! Keys: an open overlay takes them first, then the logs view's own, then the keys every
//! view shares. The help overlay (`ui::help`) lists them from [`HELP`].

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Command, Overlay, Pane, View};
use super::form::{Form, Input};
use super::tree::{self, Row};
use crate::model::Role;

/// Who may trigger and rerun; who may cancel, pause and reload.
const TRIGGERERS: &[Role] = &[Role::Trigger, Role::Operator];
const OPERATORS: &[Role] = &[Role::Operator];

/// The roles a key's action needs, for the keys that act on the principal.
pub fn needs(keys: &str) -> Option<&'static [Role]> {
    match keys {
        "r" | "R F" => Some(TRIGGERERS),
        "c" | "p" | "Ctrl-R" => Some(OPERATORS),
        _ => None,
    }
}

/// (keys, what they do, the views they apply to: empty for all).
pub const HELP: &[(&str, &str, &[View])] = &[
    (
        ":",
        "command: workflows runs logs RUN agents schedules principal query SQL reload q",
        &[],
    ),
    (
        "1-7",
        "switch view (workflows runs logs agents schedules principal query)",
        &[],
    ),
    (
        "j k ↑ ↓",
        "move; PgUp PgDn page; g G first last; mouse wheel scrolls",
        &[],
    ),
    (
        "Enter",
        "drill down (folder: fold; workflow: its runs; run: its tasks)",
        &[],
    ),
    ("Esc", "back, or close an overlay", &[]),
    ("Tab", "switch pane (runs list / run detail)", &[]),
    ("/", "filter the list; in the logs view, search", &[]),
    (
        "r",
        "trigger the selected workflow (its params form; Enter submits)",
        &[View::Workflows, View::Runs, View::Schedules],
    ),
    (
        "c",
        "cancel the selected run (y confirms)",
        &[View::Runs, View::Logs],
    ),
    (
        "R F",
        "rerun the selected run; rerun its failed tasks",
        &[View::Runs, View::Logs],
    ),
    (
        "l",
        "logs of the selected run (of the selected task, from the task pane)",
        &[View::Runs],
    ),
    (
        "y",
        "copy the run id to the clipboard",
        &[View::Runs, View::Logs],
    ),
    (
        "p",
        "pause / resume the selected schedule",
        &[View::Workflows, View::Schedules],
    ),
    ("Ctrl-R", "reload the workflow files", &[]),
    ("n N", "next / previous search match", &[View::Logs]),
    ("s", "stdout and stderr / stdout / stderr", &[View::Logs]),
    ("w", "wrap long lines", &[View::Logs]),
    (
        "t",
        "jump to a time (HH:MM[:SS] or RFC 3339)",
        &[View::Logs],
    ),
    ("G End", "follow the end again", &[View::Logs]),
    ("?", "this help", &[]),
    (
        "q Ctrl-C",
        "quit (q goes back first from a drill-down)",
        &[],
    ),
];

/// The commands of `:`, completed with Tab.
pub const COMMANDS: &[&str] = &[
    "workflows",
    "runs",
    "logs",
    "agents",
    "schedules",
    "principal",
    "query",
    "reload",
    "help",
    "q",
];

pub fn handle(app: &mut App, key: KeyEvent) -> Vec<Command> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('c') {
        app.quit = true;
        return Vec::new();
    }
    if let Some(overlay) = app.overlay.take() {
        return super::prompt::overlay_key(app, overlay, key);
    }
    if app.view == View::Logs {
        if let Some(commands) = logs_key(app, key) {
            return commands;
        }
    }
    let page = app.page.max(1) as isize;
    match key.code {
        KeyCode::Char('r') if ctrl => return reload(app),
        KeyCode::Char('q') => {
            if app.pane == Pane::Detail {
                app.pane = Pane::List;
            } else if app.view == View::Logs {
                return back(app);
            } else {
                app.quit = true;
            }
        }
        KeyCode::Esc => {
            if app.pane == Pane::Detail {
                app.pane = Pane::List;
            } else if app.filters.remove(&app.view).is_some() {
                app.clamp();
            } else {
                return back(app);
            }
        }
        KeyCode::Char('?') => app.overlay = Some(Overlay::Help),
        KeyCode::Char(':') => app.overlay = Some(Overlay::Command(Input::default())),
        KeyCode::Char('/') => {
            let current = app.filters.get(&app.view).cloned().unwrap_or_default();
            app.overlay = Some(Overlay::Filter(Input::with(&current)));
        }
        KeyCode::Char(c @ '1'..='7') => {
            let view = View::ALL[(c as u8 - b'1') as usize];
            return app.open(view);
        }
        KeyCode::Tab | KeyCode::BackTab if app.view == View::Runs => {
            app.pane = match app.pane {
                Pane::List => Pane::Detail,
                Pane::Detail => Pane::List,
            };
        }
        KeyCode::Down | KeyCode::Char('j') => return app.move_selection(1),
        KeyCode::Up | KeyCode::Char('k') => return app.move_selection(-1),
        KeyCode::PageDown => return app.move_selection(page),
        KeyCode::PageUp => return app.move_selection(-page),
        KeyCode::Home | KeyCode::Char('g') => return app.move_selection(isize::MIN / 2),
        KeyCode::End | KeyCode::Char('G') => return app.move_selection(isize::MAX / 2),
        KeyCode::Enter | KeyCode::Char(' ') => return drill(app, key.code == KeyCode::Enter),
        KeyCode::Char('r') => return trigger_form(app),
        KeyCode::Char('c') => return confirm_cancel(app),
        KeyCode::Char('R') => return rerun(app, false),
        KeyCode::Char('F') => return rerun(app, true),
        KeyCode::Char('p') => return pause(app),
        KeyCode::Char('l') => match app.target_run() {
            Some(run) => {
                // From the task pane, only that task's lines.
                let task = (app.view == View::Runs && app.pane == Pane::Detail)
                    .then(|| app.data.detail.as_ref()?.tasks.get(app.task))
                    .flatten()
                    .map(|t| t.task_id.to_string());
                return app.open_logs(&run, task);
            }
            None => app.say("no run selected", true),
        },
        KeyCode::Char('y') => match app.target_run() {
            Some(run) => {
                app.say(format!("copied {run} to the clipboard"), false);
                return vec![Command::Copy(run)];
            }
            None => app.say("no run selected", true),
        },
        _ => {}
    }
    Vec::new()
}

fn back(app: &mut App) -> Vec<Command> {
    match app.back.pop() {
        Some(view) => {
            app.view = view;
            app.pane = Pane::List;
            Vec::new()
        }
        None => Vec::new(),
    }
}

/// The logs view's keys; None for keys it leaves to the shared ones.
fn logs_key(app: &mut App, key: KeyEvent) -> Option<Vec<Command>> {
    let height = app.page.max(1);
    let logs = &mut app.logs;
    match key.code {
        KeyCode::Down | KeyCode::Char('j') => logs.scroll(1, height),
        KeyCode::Up | KeyCode::Char('k') => {
            logs.scroll(-1, height);
            return Some(app.earlier_logs());
        }
        KeyCode::PageDown | KeyCode::Char(' ') => logs.scroll(height as isize, height),
        KeyCode::PageUp => {
            logs.scroll(-(height as isize), height);
            return Some(app.earlier_logs());
        }
        KeyCode::Home | KeyCode::Char('g') => {
            logs.to_start();
            return Some(app.earlier_logs());
        }
        KeyCode::End | KeyCode::Char('G') if logs.later => return Some(app.refollow()),
        KeyCode::End | KeyCode::Char('G') => logs.to_end(),
        KeyCode::Char('s') => logs.toggle_stream(),
        KeyCode::Char('w') => logs.wrap = !logs.wrap,
        KeyCode::Char('t') => app.overlay = Some(Overlay::JumpTime(Input::default())),
        KeyCode::Char('/') => {
            let current = logs.search.clone().unwrap_or_default();
            app.overlay = Some(Overlay::Search(Input::with(&current)));
        }
        KeyCode::Char(c @ ('n' | 'N')) => {
            if !logs.step_search(c == 'n', height) {
                let what = logs.search.clone().unwrap_or_default();
                app.say(format!("no line contains {what:?}"), true);
            }
        }
        _ => return None,
    }
    Some(Vec::new())
}

/// Enter (or Space) on the selection.
fn drill(app: &mut App, enter: bool) -> Vec<Command> {
    match app.view {
        View::Workflows => match tree::rows(app).get(app.selection(View::Workflows)) {
            Some(Row::Folder { path, .. }) => {
                if !app.folded.remove(path) {
                    app.folded.insert(path.clone());
                }
                app.clamp();
                Vec::new()
            }
            Some(Row::Workflow { id, .. }) if enter => runs_of(app, id.clone()),
            _ => Vec::new(),
        },
        View::Runs if enter => {
            app.pane = Pane::Detail;
            app.watch_selected_run()
        }
        View::Schedules if enter => match app.selected_schedule() {
            Some(s) => {
                let id = s.workflow_id.to_string();
                runs_of(app, id)
            }
            None => Vec::new(),
        },
        View::Agents if enter => match app.visible_agents().get(app.selection(View::Agents)) {
            Some(a) => {
                let id = a.agent_id.to_string();
                runs_of(app, id)
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn runs_of(app: &mut App, filter: String) -> Vec<Command> {
    app.filters.insert(View::Runs, filter);
    app.selected.insert(View::Runs, 0);
    app.open(View::Runs)
}

/// Why the cockpit's credential may not do something, when it may not.
fn refused(app: &App, allowed: &[Role], what: &str) -> Option<String> {
    let role = app.data.role?;
    (!allowed.contains(&role)).then(|| format!("disabled: a {role} credential may not {what}"))
}

/// The workflow the selection points at, in whichever view.
fn selected_workflow(app: &App) -> Option<String> {
    match app.view {
        View::Workflows => tree::selected_workflow(app),
        View::Schedules => app.selected_schedule().map(|s| s.workflow_id.to_string()),
        View::Runs => app.selected_run().map(|r| r.workflow_id.to_string()),
        View::Logs => app.logs.workflow.clone(),
        _ => None,
    }
}

fn trigger_form(app: &mut App) -> Vec<Command> {
    if let Some(why) = refused(app, TRIGGERERS, "trigger runs") {
        app.say(why, true);
        return Vec::new();
    }
    let Some(id) = selected_workflow(app) else {
        app.say("select a workflow to trigger", true);
        return Vec::new();
    };
    let workflow = app
        .data
        .workflows
        .as_ref()
        .and_then(|l| l.workflows.iter().find(|w| w.id.as_str() == id));
    match workflow {
        Some(w) => app.overlay = Some(Overlay::Form(Box::new(Form::new(w.clone())))),
        None => app.say(format!("workflow {id} is not loaded"), true),
    }
    Vec::new()
}

fn confirm_cancel(app: &mut App) -> Vec<Command> {
    if let Some(why) = refused(app, OPERATORS, "cancel runs") {
        app.say(why, true);
        return Vec::new();
    }
    match app.target_run() {
        Some(run) => {
            app.overlay = Some(Overlay::Confirm {
                question: format!("Cancel run {run}? (y/n)"),
                then: Command::Cancel(run),
            })
        }
        None => app.say("no run selected", true),
    }
    Vec::new()
}

fn rerun(app: &mut App, failed_only: bool) -> Vec<Command> {
    if let Some(why) = refused(app, TRIGGERERS, "rerun runs") {
        app.say(why, true);
        return Vec::new();
    }
    match app.target_run() {
        Some(run) => vec![Command::Rerun { run, failed_only }],
        None => {
            app.say("no run selected", true);
            Vec::new()
        }
    }
}

fn pause(app: &mut App) -> Vec<Command> {
    if let Some(why) = refused(app, OPERATORS, "pause schedules") {
        app.say(why, true);
        return Vec::new();
    }
    let Some(id) = selected_workflow(app) else {
        app.say("select a scheduled workflow", true);
        return Vec::new();
    };
    match app
        .data
        .schedules
        .iter()
        .find(|s| s.workflow_id.as_str() == id)
    {
        Some(s) => vec![Command::Pause {
            workflow: id,
            paused: !s.paused,
        }],
        None => {
            app.say(format!("{id} has no schedule"), true);
            Vec::new()
        }
    }
}

pub fn reload(app: &mut App) -> Vec<Command> {
    if let Some(why) = refused(app, OPERATORS, "reload workflows") {
        app.say(why, true);
        return Vec::new();
    }
    vec![Command::Reload]
}
