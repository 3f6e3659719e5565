//! `cdktr run --wait`: a line per task state change when standard error is not a terminal, a
//! table redrawn in place on a terminal (a real pseudo-terminal, through `script`), and
//! `--logs` printing the run's output, every line exactly once.

use std::process::Command;

use crate::common::cluster::{start_agent, Principal};
use crate::common::{Run, Workspace};

/// Three tasks: two print (one on stderr, one slowly, with a pause so the table redraws), a
/// third depends on both.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "wf/chatty.yml",
        "name: Chatty\ntasks:\n  \
           first:\n    name: First\n    config: !Shell\n      script: \"for i in 1 2 3; do echo line $i; sleep 0.3; done\"\n  \
           second:\n    name: Second\n    config: !Shell\n      script: \"echo oops >&2; seq 100 199\"\n  \
           last:\n    name: Last\n    depends: [first, second]\n    config: !Shell\n      script: \"echo done\"\n",
    );
    ws
}

#[test]
fn run_wait_logs_prints_each_line_once_and_states_in_order_when_not_a_terminal() {
    let ws = workspace();
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let run = ws.run(&["--principal", &p.api, "run", "chatty", "--wait", "--logs"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    for line in [
        "line 1", "line 2", "line 3", "oops", "100", "150", "199", "done",
    ] {
        let shown = run
            .stdout
            .lines()
            .filter(|l| l.ends_with(&format!("| {line}")))
            .count();
        assert_eq!(shown, 1, "`{line}` printed {shown} times:\n{}", run.stdout);
    }
    assert!(
        run.stdout.contains("second           !| oops"),
        "{}",
        run.stdout
    );
    // Each task's states in order: RUNNING (unless it ended before the first look) before
    // COMPLETED, nothing after COMPLETED (a late RUNNING event is not shown).
    for task in ["first", "second", "last"] {
        let states: Vec<&str> = run
            .stderr
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace().skip(1);
                (words.next() == Some(task)).then(|| words.next()).flatten()
            })
            .collect();
        assert!(
            states == ["RUNNING", "COMPLETED"] || states == ["COMPLETED"],
            "{task}: {states:?}\n{}",
            run.stderr
        );
    }
    // The summary follows on stdout.
    assert!(
        run.stdout.contains("status:    COMPLETED"),
        "{}",
        run.stdout
    );
    // Without --logs, no output lines.
    let quiet = ws.run(&["--principal", &p.api, "run", "chatty", "--wait"]);
    assert_eq!(quiet.code, Some(0), "{}", quiet.stderr);
    assert!(!quiet.stdout.contains("| line 1"), "{}", quiet.stdout);
    // --logs needs --wait.
    let alone = ws.run(&["--principal", &p.api, "run", "chatty", "--logs"]);
    assert_eq!(alone.code, Some(2), "{}", alone.stderr);
}

#[test]
fn run_wait_draws_a_live_table_on_a_terminal() {
    let ws = workspace();
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let command = format!(
        "{} --principal {} run chatty --wait --logs",
        env!("CARGO_BIN_EXE_cdktr"),
        p.api
    );
    // `script` runs the command on a new pseudo-terminal and copies what it writes there.
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .current_dir(ws.path())
        .output()
        .expect("run script (util-linux)");
    let run = Run::from(out);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let screen = &run.stdout;
    assert!(
        screen.contains("TASK") && screen.contains("STATE") && screen.contains("LAST LINE"),
        "no table: {screen}"
    );
    // Redrawn in place: the cursor goes up over the old table, which is cleared.
    assert!(
        screen.contains("\u{1b}[J"),
        "not redrawn in place: {screen}"
    );
    // A running task's row with its last line, then the summary once it ended.
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("first") && l.contains("RUNNING") && l.contains("line ")),
        "{screen}"
    );
    assert!(screen.contains("| line 3"), "{screen}");
    assert!(screen.contains("status:    COMPLETED"), "{screen}");
}

/// `cdktr` on a terminal through `script`: its standard output as the terminal showed it.
fn on_terminal(ws: &Workspace, command: &str, env: &[(&str, &str)]) -> Run {
    let out = Command::new("script")
        .args(["-qefc", command, "/dev/null"])
        .current_dir(ws.path())
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .envs(env.iter().copied())
        .output()
        .expect("run script (util-linux)");
    Run::from(out)
}

#[test]
fn states_are_coloured_on_a_terminal_unless_no_color_and_times_are_zoned() {
    let ws = workspace();
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let command = format!(
        "{} --principal {} agents list",
        env!("CARGO_BIN_EXE_cdktr"),
        p.api
    );
    let coloured = on_terminal(&ws, &command, &[]);
    assert_eq!(coloured.code, Some(0), "{}", coloured.stdout);
    assert!(
        coloured.stdout.contains("\u{1b}[32malive"),
        "{}",
        coloured.stdout
    );
    let plain = on_terminal(&ws, &command, &[("NO_COLOR", "1")]);
    assert!(plain.stdout.contains("alive"), "{}", plain.stdout);
    assert!(
        !plain.stdout.contains('\u{1b}'),
        "NO_COLOR: {}",
        plain.stdout
    );
    let piped = ws.run(&["--principal", &p.api, "agents", "list"]);
    assert!(!piped.stdout.contains('\u{1b}'), "piped: {}", piped.stdout);
    // Piped, times are UTC and the header says so; on a terminal the header names the zone
    // the times are in (UTC here unless TZ says otherwise).
    assert!(
        piped.stdout.contains("LAST HEARTBEAT (UTC)"),
        "{}",
        piped.stdout
    );
    let berlin = on_terminal(&ws, &command, &[("TZ", "Europe/Berlin")]);
    assert!(
        berlin.stdout.contains("LAST HEARTBEAT (UTC+01:00)")
            || berlin.stdout.contains("LAST HEARTBEAT (UTC+02:00)"),
        "{}",
        berlin.stdout
    );
}
