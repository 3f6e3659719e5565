//! The overlays (help, filter, command line, form, confirmation) and the keys that act.

use ratatui::crossterm::event::KeyCode;

use super::{app, key, keys, render};
use crate::model::Role;
use crate::tui::app::{Command, Conn, Event, Overlay, View};
use crate::tui::Action;

#[test]
fn help_filter_command_and_reconnecting() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!("help", render(&mut app, 110, 24));
    key(&mut app, KeyCode::Esc);
    assert!(app.overlay.is_none());
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "etl fail");
    insta::assert_snapshot!("filter", render(&mut app, 110, 12));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.visible_runs().len(), 1);
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "ag");
    key(&mut app, KeyCode::Tab);
    match &app.overlay {
        Some(Overlay::Command(input)) => assert_eq!(input.text, "agents "),
        other => panic!("{other:?}"),
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Agents);
    app.update(Action::Net(Event::Lost("no reply within 5s".into())));
    let text = render(&mut app, 110, 6);
    assert!(
        text.contains("reconnecting (0s): no reply within 5s"),
        "{text}"
    );
}

#[test]
fn trigger_form_validates_then_submits() {
    let mut app = app();
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('r'));
    assert!(matches!(app.overlay, Some(Overlay::Form(_))));
    // `env` has no default: Enter does not submit.
    assert!(key(&mut app, KeyCode::Enter).is_empty());
    insta::assert_snapshot!("form", render(&mut app, 100, 16));
    key(&mut app, KeyCode::Tab);
    keys(&mut app, "prod");
    let commands = key(&mut app, KeyCode::Enter);
    assert_eq!(
        commands,
        vec![Command::Trigger {
            workflow: "etl.daily".into(),
            params: [
                ("day".into(), "2025-01-19".into()),
                ("env".into(), "prod".into())
            ]
            .into(),
        }]
    );
    assert!(app.overlay.is_none());
}

#[test]
fn cancel_confirms_and_a_viewer_is_told_why_not() {
    let mut app = app();
    key(&mut app, KeyCode::Char('c'));
    insta::assert_snapshot!("confirm", render(&mut app, 80, 12));
    assert!(key(&mut app, KeyCode::Char('n')).is_empty());
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Command::Cancel("01C".into())]
    );
    assert_eq!(
        key(&mut app, KeyCode::Char('R')),
        vec![Command::Rerun {
            run: "01C".into(),
            failed_only: false
        }]
    );
    key(&mut app, KeyCode::Char('5'));
    assert_eq!(
        key(&mut app, KeyCode::Char('p')),
        vec![Command::Pause {
            workflow: "etl.daily".into(),
            paused: true
        }]
    );
    app.update(Action::Net(Event::Role(Role::Viewer)));
    assert!(key(&mut app, KeyCode::Char('p')).is_empty());
    let text = render(&mut app, 100, 12);
    assert!(
        text.contains("disabled: a viewer credential may not pause schedules"),
        "{text}"
    );
    // The help says which keys the credential may not use.
    key(&mut app, KeyCode::Char('?'));
    let help = render(&mut app, 120, 30);
    assert!(
        help.contains("pause / resume the selected schedule  (disabled: a viewer credential"),
        "{help}"
    );
}

#[test]
fn usable_at_80_by_24_and_quits_with_q() {
    let mut app = app();
    insta::assert_snapshot!("runs_80x24", render(&mut app, 80, 24));
    assert!(matches!(app.conn, Conn::Up));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('q'));
    assert!(!app.quit, "q first leaves the detail pane");
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}
