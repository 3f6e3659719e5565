//! The real `cdktr-tui` binary in a real terminal (tmux), against a real principal.

use std::process::Command;
use std::time::Duration;

use crate::common::cluster::{wait_for, Api, Principal};
use crate::common::{valid_workflow, Workspace};

struct Tmux(String);

impl Tmux {
    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

#[test]
fn cockpit_shows_runs_tasks_and_agents_and_quits_on_q() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let run = api.trigger("hello");
    api.wait_done(&run, Duration::from_secs(30));

    let session = Tmux(format!("cdktr-tui-{}", std::process::id()));
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session.0,
            "-x",
            "120",
            "-y",
            "30",
        ])
        .arg(format!(
            "{} --principal {}",
            env!("CARGO_BIN_EXE_cdktr-tui"),
            p.api
        ))
        .current_dir(ws.path())
        .status()
        .expect("tmux is installed (.ci/run installs it)");
    assert!(status.success());
    let screen = wait_for(
        Duration::from_secs(20),
        "the cockpit to show the run",
        || {
            let s = session.capture();
            (s.contains("hello") && s.contains("COMPLETED") && s.contains("alive")).then_some(s)
        },
    );
    assert!(
        screen.contains(&format!("Tasks of {run} (hello)")),
        "{screen}"
    );
    assert!(screen.contains("agents 1/1"), "{screen}");
    Command::new("tmux")
        .args(["send-keys", "-t", &session.0, "q"])
        .status()
        .unwrap();
    wait_for(Duration::from_secs(10), "the cockpit to quit", || {
        (!session.alive()).then_some(())
    });
}
