//! The audit log: control actions with who took them and from where, runs with who
//! triggered them, and changes of the keys file, read back with `cdktr audit`.

use std::time::Duration;

use serde_json::Value;

use crate::auth::{as_client, secured};
use crate::common::cluster::{start_agent, wait_for, Principal};

#[test]
fn every_action_is_audited_with_its_actor_and_runs_record_who_triggered_them() {
    let ws = secured();
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "web1", 1, &[]);

    let run = as_client(&ws, "hook", &p.api, &["run", "hello", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run_id = run.json()["run_id"].as_str().unwrap().to_owned();
    let refused = as_client(&ws, "hook", &p.api, &["run", "nope"]);
    assert_ne!(refused.code, Some(0));
    // Through the control socket: the local user, as an operator.
    assert_eq!(ws.run(&["workflow", "reload"]).code, Some(0));
    // Reads are not actions.
    assert_eq!(as_client(&ws, "viewer", &p.api, &["status"]).code, Some(0));

    let shown = ws.run(&["runs", "show", &run_id, "--json"]).json();
    assert_eq!(shown["triggered_by"], "hook", "{shown}");

    let audit = |args: &[&str]| {
        let mut all = vec!["audit", "--json"];
        all.extend_from_slice(args);
        let out = as_client(&ws, "viewer", &p.api, &all);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.json().as_array().unwrap().clone()
    };
    let entries = wait_for(Duration::from_secs(10), "three audit entries", || {
        let entries = audit(&[]);
        (entries.len() >= 3).then_some(entries)
    });
    let find = |action: &str, outcome_ok: bool| -> Value {
        entries
            .iter()
            .find(|e| e["action"] == action && (e["outcome"] == "ok") == outcome_ok)
            .unwrap_or_else(|| panic!("no {action} entry in {entries:#?}"))
            .clone()
    };
    let trigger = find("trigger", true);
    assert_eq!(trigger["actor"], "hook");
    assert_eq!(trigger["role"], "trigger");
    assert_eq!(trigger["peer"], "127.0.0.1");
    assert_eq!(trigger["target"], "hello");
    assert!(trigger["detail"].as_str().unwrap().contains(&run_id));
    let failed = find("trigger", false);
    assert_eq!(failed["target"], "nope");
    assert!(
        failed["outcome"].as_str().unwrap().contains("not_found"),
        "{failed}"
    );
    let reload = find("reload", true);
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    assert_eq!(reload["actor"], format!("local:{user}"));
    assert_eq!(reload["peer"], "local");
    assert!(!entries.iter().any(|e| e["action"] == "status"));
    assert_eq!(audit(&["--actor", "hook", "--action", "trigger"]).len(), 2);

    // A revoked credential shows up as a key change.
    assert_eq!(ws.run(&["keys", "revoke", "web2"]).code, Some(0));
    wait_for(
        Duration::from_secs(10),
        "the key removal in the audit log",
        || {
            audit(&["--action", "key_removed"])
                .iter()
                .find(|e| e["target"] == "web2" && e["actor"] == "keys-file")
                .cloned()
        },
    );
    let table = as_client(&ws, "viewer", &p.api, &["audit"]).stdout;
    assert!(
        table.starts_with("TIME (UTC)") && table.contains("key_removed"),
        "{table}"
    );
}
