//! Keys while an overlay is open: the `:` command line (with completion), the `/` filter
//! and search prompts, the time prompt, the trigger form and the confirmation.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::app::{App, Command, Overlay, View};
use super::form::Input;
use super::keys::{reload, COMMANDS};

pub fn overlay_key(app: &mut App, overlay: Overlay, key: KeyEvent) -> Vec<Command> {
    let (enter, esc) = (key.code == KeyCode::Enter, key.code == KeyCode::Esc);
    match overlay {
        Overlay::Help => {
            // Any key closes it; `?` and Esc are the documented ones.
        }
        Overlay::Command(mut input) => {
            if enter {
                return run_command(app, input.text.trim());
            }
            if esc {
                return Vec::new();
            }
            if key.code == KeyCode::Tab {
                complete(app, &mut input);
            } else {
                input.edit(key);
            }
            app.overlay = Some(Overlay::Command(input));
        }
        Overlay::Filter(mut input) => {
            if esc {
                return Vec::new();
            }
            input.edit(key);
            // The list narrows as the filter is typed; Enter keeps it.
            if input.text.is_empty() {
                app.filters.remove(&app.view);
            } else {
                app.filters.insert(app.view, input.text.clone());
            }
            app.selected.insert(app.view, 0);
            app.clamp();
            if !enter {
                app.overlay = Some(Overlay::Filter(input));
            }
            return match app.view {
                View::Runs | View::Workflows => app.watch_for_view(),
                _ => Vec::new(),
            };
        }
        Overlay::Search(mut input) => {
            if enter {
                app.logs.search = (!input.text.is_empty()).then(|| input.text.clone());
                app.logs.found = None;
                if !app.logs.step_search(true, app.page.max(1)) && !input.text.is_empty() {
                    app.say(format!("no line contains {:?}", input.text), true);
                }
            } else if !esc {
                input.edit(key);
                app.overlay = Some(Overlay::Search(input));
            }
        }
        Overlay::JumpTime(mut input) => {
            if enter {
                if !app.logs.jump_to_time(&input.text, app.local) {
                    app.say(
                        format!("{:?} is not a time: HH:MM[:SS] or RFC 3339", input.text),
                        true,
                    );
                }
            } else if !esc {
                input.edit(key);
                app.overlay = Some(Overlay::JumpTime(input));
            }
        }
        Overlay::Form(mut form) => match key.code {
            KeyCode::Esc => {}
            KeyCode::Enter => {
                if form.check() {
                    return vec![Command::Trigger {
                        workflow: form.workflow.id.to_string(),
                        params: form.values(),
                    }];
                }
                app.overlay = Some(Overlay::Form(form));
            }
            KeyCode::Tab | KeyCode::Down => {
                form.move_focus(1);
                app.overlay = Some(Overlay::Form(form));
            }
            KeyCode::BackTab | KeyCode::Up => {
                form.move_focus(-1);
                app.overlay = Some(Overlay::Form(form));
            }
            _ => {
                form.edit(key);
                app.overlay = Some(Overlay::Form(form));
            }
        },
        Overlay::Confirm { then, question } => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => return vec![then],
            KeyCode::Char('n') | KeyCode::Esc => app.say("not done", false),
            _ => app.overlay = Some(Overlay::Confirm { then, question }),
        },
    }
    Vec::new()
}

/// Tab in command mode: the command, then a run id after `logs `.
fn complete(app: &App, input: &mut Input) {
    let text = input.text.trim_start().to_owned();
    let (candidates, prefix, head): (Vec<String>, &str, &str) = match text.split_once(' ') {
        Some(("logs", run)) => (
            app.data.runs.iter().map(|r| r.run_id.to_string()).collect(),
            run.trim(),
            "logs ",
        ),
        Some(_) => return,
        None => (
            COMMANDS.iter().map(|c| c.to_string()).collect(),
            text.as_str(),
            "",
        ),
    };
    let matching: Vec<&String> = candidates
        .iter()
        .filter(|c| c.starts_with(prefix))
        .collect();
    let Some(first) = matching.first() else {
        return;
    };
    let common = matching.iter().fold(first.as_str(), |acc, c| {
        let n = acc
            .chars()
            .zip(c.chars())
            .take_while(|(a, b)| a == b)
            .count();
        &acc[..acc.char_indices().nth(n).map_or(acc.len(), |(i, _)| i)]
    });
    let space = if matching.len() == 1 && head.is_empty() {
        " "
    } else {
        ""
    };
    *input = Input::with(&format!("{head}{common}{space}"));
}

fn run_command(app: &mut App, text: &str) -> Vec<Command> {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    let view = |name: &str| View::ALL.into_iter().find(|v| v.title() == name);
    match word {
        "" => Vec::new(),
        "q" | "quit" => {
            app.quit = true;
            Vec::new()
        }
        "help" => {
            app.overlay = Some(Overlay::Help);
            Vec::new()
        }
        "reload" => reload(app),
        "wf" => app.open(View::Workflows),
        "logs" if !rest.is_empty() => {
            // A prefix of a listed run is enough.
            let run = app
                .data
                .runs
                .iter()
                .map(|r| r.run_id.to_string())
                .find(|id| id.starts_with(rest))
                .unwrap_or_else(|| rest.to_owned());
            app.open_logs(&run, None)
        }
        "query" if !rest.is_empty() => {
            let mut commands = app.open(View::Query);
            app.data.query = None;
            commands.push(Command::Query(rest.to_owned()));
            commands
        }
        name => match view(name) {
            Some(v) => {
                if v == View::Runs && !rest.is_empty() {
                    app.filters.insert(View::Runs, rest.to_owned());
                    app.selected.insert(View::Runs, 0);
                }
                app.open(v)
            }
            None => {
                app.say(
                    format!("unknown command `{name}` (: then Tab lists them)"),
                    true,
                );
                Vec::new()
            }
        },
    }
}
