//! Policies and params: parsing, validation and resolution.

use super::*;

#[test]
fn workflow_round_trips_through_json() {
    let w = valid(LEGACY);
    let json = serde_json::to_string(&w).unwrap();
    let back: Workflow = serde_json::from_str(&json).unwrap();
    assert_eq!(w, back);
}

#[test]
fn policies_and_params() {
    let w = valid(
        r#"name: x
cron: "0 9 * * *"
overlap: queue
catchup: all
params:
  day: today
  region:
    default: eu
    description: Where to run
tasks:
  a: {name: A, config: !Subprocess {cmd: echo, args: ["{{ params.day }}"], env: {R: "{{params.region}}"}}}
"#,
    );
    assert_eq!(w.overlap, crate::model::Overlap::Queue);
    assert_eq!(w.catchup, crate::model::Catchup::All);
    assert_eq!(w.params["day"].default.as_deref(), Some("today"));
    assert_eq!(
        w.params["region"].description.as_deref(),
        Some("Where to run")
    );
    let defaults = valid("name: x\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n");
    assert_eq!(defaults.overlap, crate::model::Overlap::Skip);
    assert_eq!(defaults.catchup, crate::model::Catchup::Latest);
}

#[test]
fn bad_policies_and_params_are_reported() {
    let errs =
        errors("name: x\noverlap: sometimes\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n");
    assert_eq!(
        errs,
        ["t.yml:2:10: error: `overlap` must be allow, skip or queue, not `sometimes`"]
    );
    let errs =
        errors("name: x\ncatchup: yes\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n");
    assert!(
        errs[0].contains("`catchup` must be none, latest or all"),
        "{errs:?}"
    );
    let errs = errors(
        "name: x\nparams: {day: mon}\ntasks:\n  a: {name: A, config: !Shell {script: \"echo {{ params.dya }}\"}}\n",
    );
    assert_eq!(
        errs,
        ["t.yml: error: task `a`: `{{ params.dya }}` names an undeclared parameter (did you mean `day`?)"]
    );
    let errs = errors(
        "name: x\ncron: \"0 9 * * *\"\nparams: {day: {description: d}}\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    assert!(
        errs[0].contains("parameter `day` has no default, but scheduled runs need"),
        "{errs:?}"
    );
    let errs = errors(
        "name: x\nparams: {\"1st\": a}\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    assert!(errs[0].contains("parameter name `1st`"), "{errs:?}");
}

#[test]
fn params_resolve_with_defaults_and_reject_unknown_or_missing() {
    let w = valid("name: x\nparams:\n  day: mon\n  who: {}\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n");
    let given = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let values = w.resolve_params(&given(&[("who", "me")])).unwrap();
    assert_eq!(values, given(&[("day", "mon"), ("who", "me")]));
    let err = w
        .resolve_params(&given(&[("who", "me"), ("dya", "x")]))
        .unwrap_err();
    assert!(
        err.contains("`dya` is not a parameter") && err.contains("declared: day, who"),
        "{err}"
    );
    assert!(w.resolve_params(&given(&[])).unwrap_err().contains("`who`"));
}

#[test]
fn param_patterns_and_choices_are_validated_with_their_defaults() {
    let errs = errors(
        "name: x\nparams: {tag: {pattern: \"v[0-9\"}}\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    assert!(
        errs[0].contains("parameter `tag`: `pattern` is not a regular expression"),
        "{errs:?}"
    );
    let errs = errors(
        "name: x\nparams: {env: {choices: [a, b], default: c}}\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    assert!(
        errs[0].contains("parameter `env`: the default \"c\" is not one of a, b"),
        "{errs:?}"
    );
    let w = valid(
        "name: x\nparams: {env: {choices: [a, b], default: a}, tag: {pattern: \"v[0-9]+\"}}\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    assert_eq!(w.params["env"].choices, ["a", "b"]);
    assert_eq!(w.params["tag"].pattern.as_deref(), Some("v[0-9]+"));
    let given = BTreeMap::from([("tag".to_owned(), "v1; x".to_owned())]);
    let err = w.resolve_params(&given).unwrap_err();
    assert!(
        err.contains("parameter `tag`: \"v1; x\" does not match the pattern `v[0-9]+`"),
        "{err}"
    );
}

#[test]
fn a_placeholder_inside_shell_quotes_is_refused_with_the_way_to_write_it() {
    let errs = errors(
        "name: x\nparams: {v: a}\ntasks:\n  a: {name: A, config: !Shell {script: \"echo \\\"{{ params.v }}\\\"\"}}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("task `a`")
            && errs[0].contains("stands inside double quotes")
            && errs[0].contains("\"$CDKTR_PARAM_V\""),
        "{errs:?}"
    );
    let errs = errors(
        "name: x\nparams: {v: a}\ntasks:\n  a: {name: A, config: !Shell {script: \"echo '{{ params.v }}'\"}}\n",
    );
    assert!(errs[0].contains("single quotes"), "{errs:?}");
    // Bare, it is fine; in a Subprocess argument there is no shell at all.
    valid("name: x\nparams: {v: a}\ntasks:\n  a: {name: A, config: !Shell {script: \"echo {{ params.v }}\"}}\n");
    valid("name: x\nparams: {v: a}\ntasks:\n  a: {name: A, config: !Subprocess {cmd: echo, args: [\"'{{ params.v }}'\"]}}\n");
}
