//! Parameter values never reach a shell as code: in a `!Shell` script each value is one quoted
//! word, and declared `pattern`/`choices` are enforced when a run is triggered.

use std::collections::BTreeMap;
use std::time::Duration;

use cdktr::model::RunStatus;

use crate::common::cluster::{Api, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(60);

/// Values a shell would act on if they were pasted into a script as they are.
const HOSTILE: &[&str] = &[
    "'; touch PWNED; '",
    "$(touch PWNED)",
    "`touch PWNED`",
    "a\"b\\c $HOME ${HOME} * ? [x] ~ # ; | & > PWNED",
    "-n",
    "",
    "   spaced   out   ",
];

#[test]
fn a_hostile_param_value_runs_as_one_word_and_executes_nothing() {
    let ws = Workspace::new();
    ws.write(
        "wf/echo.yml",
        "name: Echo\nparams: {v: {}}\ntasks:\n  say: {name: Say, config: !Shell {script: \"printf '[%s]' {{ params.v }}\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    for value in HOSTILE {
        let params = BTreeMap::from([("v".to_owned(), (*value).to_owned())]);
        let run = api
            .call(async |c| c.trigger("echo", params, "api").await)
            .unwrap_or_else(|e| panic!("trigger with {value:?}: {e}"));
        let done = api.wait_done(run.as_str(), LONG);
        assert_eq!(done.summary.status, RunStatus::Completed, "{value:?}");
        let printed: Vec<String> = api.logs(run.as_str()).into_iter().map(|l| l.line).collect();
        assert_eq!(printed, vec![format!("[{value}]")], "{value:?}");
    }
    assert!(
        !ws.path().join("PWNED").exists(),
        "a parameter value was executed"
    );
}

#[test]
fn pattern_and_choices_are_checked_when_a_run_is_triggered() {
    let ws = Workspace::new();
    ws.write(
        "wf/deploy.yml",
        "name: Deploy\nparams:\n  env: {choices: [staging, prod], default: staging}\n  tag: {pattern: \"v[0-9]+\\\\.[0-9]+\", default: v1.0}\ntasks:\n  go: {name: Go, config: !Shell {script: \"echo {{ params.env }} {{ params.tag }}\"}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    for (param, expected) in [
        ("env=qa", "\"qa\" is not one of staging, prod"),
        (
            "tag=v1.0; rm -rf /",
            "does not match the pattern `v[0-9]+\\.[0-9]+`",
        ),
        ("tag=xv1.0", "does not match the pattern"),
    ] {
        let out = ws.run(&["--principal", &p.api, "run", "deploy", "--param", param]);
        assert_eq!(out.code, Some(2), "{param}: {}", out.stderr);
        assert!(
            out.stderr.contains("parameter `") && out.stderr.contains(expected),
            "{param}: {}",
            out.stderr
        );
    }
    let ok = ws.run(&[
        "--principal",
        &p.api,
        "run",
        "deploy",
        "--param",
        "tag=v2.13",
    ]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
}
