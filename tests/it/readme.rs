//! The README's main command works as documented: the same binary and arguments, in a copy of
//! the repository's workflows, with ports moved to free ones so tests can run in parallel.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::cluster::Daemon;
use crate::common::Workspace;

/// The shell commands of the fenced block after `marker` in the README.
fn readme_block(marker: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("README lacks {marker}"));
    let block = after
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block.lines().map(str::to_owned).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The workflow files under `dir`, recursively.
fn count_yaml(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                count_yaml(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            }
        })
        .sum()
}

#[test]
fn readme_main_command_runs_the_examples() {
    assert_eq!(
        readme_block("<!-- main-command -->"),
        ["cargo run --bin cdktr-principal -- --with-agent"]
    );
    assert_eq!(
        readme_block("<!-- second-terminal -->"),
        [
            "cargo run -- run etl.daily --wait",
            "cargo run -- logs RUN_ID"
        ]
    );
    let ws = Workspace::new();
    std::fs::remove_file(ws.path().join("cdktr.toml")).unwrap();
    copy_dir(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/workflows")),
        &ws.path().join("workflows"),
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdktr-principal"));
    cmd.current_dir(ws.path())
        .arg("--with-agent")
        .env("CDKTR_CONFIG", ws.path().join("none.toml"))
        .env("CDKTR_PRINCIPAL_LISTEN", "tcp://127.0.0.1:0")
        .env("CDKTR_PRINCIPAL_LOGS_PUBLISH", "tcp://127.0.0.1:0");
    std::fs::write(ws.path().join("none.toml"), "").unwrap();
    let mut principal = Daemon::start(cmd, "cdktr-principal ready", ws.path().join("stderr.log"));
    principal.wait_line("cdktr-agent ready", Duration::from_secs(30));
    // Every example file loads.
    let examples = count_yaml(&ws.path().join("workflows"));
    assert!(examples >= 10, "{examples} example workflows");
    assert!(
        principal.ready.contains(&format!("workflows={examples}")),
        "{}",
        principal.ready
    );
    let api = principal.field("api");

    let cli = |args: &[&str]| {
        let out = ws
            .cdktr()
            .env("CDKTR_CLIENT_PRINCIPAL", &api)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = cli(&["run", "etl.daily", "--wait"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("transform") && stderr.contains("COMPLETED"),
        "live view: {stderr}"
    );
    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("run:"))
        .map(|s| s.trim().to_owned())
        .expect("summary names the run");
    let (code, logs, _) = cli(&["logs", &run_id]);
    assert_eq!(code, Some(0));
    assert!(logs.contains("joining orders with stock"), "{logs}");
    assert!(logs.contains("a warning on stderr"), "{logs}");

    principal.signal(Signal::SIGINT);
    assert_eq!(principal.wait_exit(Duration::from_secs(30)).code(), Some(0));
    assert!(
        ws.path().join(".cdktr/cdktr.duckdb").is_file(),
        "history lives in ./.cdktr"
    );
}
