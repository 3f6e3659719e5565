use super::*;

fn span(s: &str) -> Span {
    Span::parse(s).unwrap()
}

#[test]
fn spans_parse_and_print_as_written() {
    assert_eq!(span("10s").0, Duration::from_secs(10));
    assert_eq!(span("2h 30m").to_string(), "2h 30m");
    for bad in ["0s", "", "ten", "-1s", "11years"] {
        assert!(Span::parse(bad).is_err(), "{bad}");
    }
    let json = serde_json::to_string(&span("1m 30s")).unwrap();
    assert_eq!(json, "\"1m 30s\"");
    assert_eq!(serde_json::from_str::<Span>(&json).unwrap(), span("90s"));
    assert!(serde_json::from_str::<Span>("\"0s\"").is_err());
}

#[test]
fn retry_delays_are_fixed_or_doubling_up_to_the_cap() {
    let fixed = Retry {
        retries: 3,
        delay: span("2s"),
        ..Retry::default()
    };
    let delays: Vec<_> = (0..6).map(|n| fixed.delay_before(n)).collect();
    let s = |n| Some(Duration::from_secs(n));
    assert_eq!(delays, vec![None, None, s(2), s(2), s(2), None]);
    let exp = Retry {
        retries: 40,
        delay: span("1s"),
        backoff: Backoff::Exponential,
        max_delay: Some(span("10s")),
    };
    let delays: Vec<_> = (2..7).map(|n| exp.delay_before(n)).collect();
    assert_eq!(delays, vec![s(1), s(2), s(4), s(8), s(10)]);
    assert_eq!(exp.delay_before(41), s(10));
    assert_eq!(exp.delay_before(42), None);
    // Far tries neither overflow nor exceed the longest span.
    let wild = Retry {
        max_delay: None,
        ..exp
    };
    assert_eq!(wild.delay_before(41), Some(Span::MAX));
}

#[test]
fn trigger_rules_decide_from_the_dependencies_ends() {
    use TaskStatus::{Cancelled, Completed, Failed, Skipped};
    let table: [(TriggerRule, &[TaskStatus], Decision); 14] = [
        (
            TriggerRule::AllSuccess,
            &[Completed, Completed],
            Decision::Run,
        ),
        (
            TriggerRule::AllSuccess,
            &[Completed, Failed],
            Decision::Skip,
        ),
        (
            TriggerRule::AllSuccess,
            &[Completed, Skipped],
            Decision::Skip,
        ),
        (TriggerRule::AllDone, &[Failed, Skipped], Decision::Run),
        (TriggerRule::AllDone, &[Cancelled], Decision::Run),
        (TriggerRule::OneFailed, &[Completed, Failed], Decision::Run),
        (
            TriggerRule::OneFailed,
            &[Completed, Skipped],
            Decision::Skip,
        ),
        (TriggerRule::AllFailed, &[Failed, Failed], Decision::Run),
        (TriggerRule::AllFailed, &[Failed, Completed], Decision::Skip),
        (
            TriggerRule::NoneFailed,
            &[Completed, Skipped],
            Decision::Run,
        ),
        (
            TriggerRule::NoneFailed,
            &[Completed, Failed],
            Decision::Skip,
        ),
        (TriggerRule::OneFailed, &[], Decision::Run),
        (
            TriggerRule::AllSuccess,
            &[TaskStatus::Reused],
            Decision::Run,
        ),
        (
            TriggerRule::NoneFailed,
            &[TaskStatus::Reused],
            Decision::Run,
        ),
    ];
    for (rule, deps, want) in table {
        assert_eq!(rule.decide(deps), want, "{rule:?} {deps:?}");
    }
    for rule in [
        "all_success",
        "all_done",
        "one_failed",
        "all_failed",
        "none_failed",
    ] {
        assert_eq!(
            TriggerRule::parse(rule).map(TriggerRule::as_str),
            Some(rule)
        );
    }
    assert_eq!(TriggerRule::parse("always"), None);
}

#[test]
fn labels_are_flags_or_pairs_and_match_an_agents_labels() {
    let agent: BTreeMap<String, String> = [("gpu", ""), ("region", "eu")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let held = |l: &str| Label::parse(l).unwrap().held_by(&agent);
    assert!(held("gpu") && held("region") && held("region=eu"));
    assert!(!held("region=us") && !held("ssd") && !held("gpu=a100"));
    for bad in ["", "a b", "=x", "k=", "k=v w", "k=v=w", "é"] {
        assert!(Label::parse(bad).is_err(), "{bad:?}");
    }
    let placement = Placement {
        labels: vec![
            Label::parse("gpu").unwrap(),
            Label::parse("region=us").unwrap(),
        ],
        prefer: None,
    };
    assert!(!placement.admits(&agent));
    let missing: Vec<String> = placement
        .missing(&agent)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(missing, vec!["region=us"]);
    assert!(Placement::default().admits(&BTreeMap::new()));
}
