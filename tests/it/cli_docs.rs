//! The CLI documents itself: every command's --help carries an example, every example parses
//! (so they cannot rot), completions come out for each shell, man pages for every command.

use clap::CommandFactory;

use crate::common::Workspace;

/// Every `Example: ...` in a command's help, with the command's path, recursively.
fn examples(cmd: &clap::Command, path: &str, found: &mut Vec<(String, Option<String>)>) {
    let path = if path.is_empty() {
        cmd.get_name().to_owned()
    } else {
        format!("{path} {}", cmd.get_name())
    };
    let texts = [cmd.get_long_about(), cmd.get_about(), cmd.get_after_help()];
    let example = texts
        .iter()
        .flatten()
        .flat_map(|t| t.to_string().lines().map(str::to_owned).collect::<Vec<_>>())
        .find_map(|l| l.trim().strip_prefix("Example: ").map(str::to_owned));
    found.push((path.clone(), example));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() != "help" {
            examples(sub, &path, found);
        }
    }
}

/// The example's words, as a shell would split them (quotes; the redirection and the
/// comment after it left out).
fn words(example: &str) -> Vec<String> {
    let line = example.split(" > ").next().unwrap_or(example);
    let line = line.split("    (").next().unwrap_or(line);
    let (mut words, mut word, mut quote) = (Vec::new(), String::new(), None);
    for c in line.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (_, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| w.replace("01JD8X...", "01JD8XAAAAAAAAAAAAAAAAAAAA"))
        .collect()
}

#[test]
fn every_command_has_an_example_and_every_example_parses() {
    let commands = [
        cdktr::cli::Cli::command(),
        cdktr::tui::TuiCli::command(),
        cdktr::daemon::PrincipalCli::command(),
        cdktr::daemon::AgentCli::command(),
    ];
    let mut checked = 0;
    for root in commands {
        let mut found = Vec::new();
        examples(&root, "", &mut found);
        for (path, example) in found {
            let example = example.unwrap_or_else(|| panic!("`{path} --help` has no example"));
            let argv = words(&example);
            assert_eq!(argv[0], root.get_name(), "{path}: `{example}`");
            if let Err(e) = root.clone().try_get_matches_from(&argv) {
                panic!("{path}: the example `{example}` does not parse: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} commands");
}

#[test]
fn completions_come_out_for_each_shell() {
    let ws = Workspace::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = ws.run(&["completions", shell]);
        assert_eq!(run.code, Some(0), "{shell}: {}", run.stderr);
        assert!(
            run.stdout.contains("cdktr") && run.stdout.contains("rerun"),
            "{shell}"
        );
    }
    // The bash script is valid bash.
    let script = ws.write("cdktr.bash", &ws.run(&["completions", "bash"]).stdout);
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bad = ws.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}

#[test]
fn man_pages_cover_every_command_and_the_daemons() {
    let ws = Workspace::new();
    let run = ws.run(&["man", "--out", "man"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let dir = ws.path().join("man");
    for page in [
        "cdktr.1",
        "cdktr-run.1",
        "cdktr-runs-list.1",
        "cdktr-logs-query.1",
        "cdktr-principal.1",
        "cdktr-agent.1",
        "cdktr-tui.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page} is not roff"
        );
        assert!(text.contains("Example"), "{page} has no example");
    }
    let pages = std::fs::read_dir(&dir).unwrap().count();
    assert!(pages >= 45, "{pages} pages");
    // The hidden failpoint command is not documented.
    assert!(!dir.join("cdktr-failpoint.1").exists());
}
