//! Scheduling with real processes: every slot's fate, overlap and catchup policies, pauses
//! across restarts, hot reload.

use std::time::Duration;

use cdktr::protocol::control::{ControlReply, ControlRequest, SlotRecord};
use nix::sys::signal::Signal;

use crate::common::cluster::{wait_for, Api, Principal};
use crate::common::Workspace;

fn every_second(ws: &Workspace, id: &str, extra: &str, script: &str) {
    ws.write(
        &format!("wf/{id}.yml"),
        &format!("name: {id}\ncron: \"* * * * * *\"\n{extra}tasks:\n  t: {{name: T, config: !Shell {{script: \"{script}\"}}}}\n"),
    );
}

/// Slot records of `workflow`, oldest first.
fn history(api: &Api, workflow: &str) -> Vec<SlotRecord> {
    match api.ask(ControlRequest::ScheduleHistory {
        workflow: workflow.into(),
        limit: Some(1000),
    }) {
        Ok(ControlReply::Slots { mut slots }) => {
            slots.reverse();
            slots
        }
        other => panic!("history: {other:?}"),
    }
}

fn count(slots: &[SlotRecord], fate: &str) -> usize {
    slots.iter().filter(|s| s.fate == fate).count()
}

/// Consecutive slots are exactly one second apart: none missing, none twice.
fn assert_contiguous(slots: &[SlotRecord]) {
    for pair in slots.windows(2) {
        let gap = pair[1].slot - pair[0].slot;
        assert_eq!(
            gap.num_milliseconds(),
            1000,
            "slots {} and {}",
            pair[0].slot,
            pair[1].slot
        );
    }
}

#[test]
fn a_one_second_cron_fires_every_second_for_ten_seconds() {
    let ws = Workspace::new();
    every_second(&ws, "tick", "overlap: allow\n", "true");
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let slots = wait_for(Duration::from_secs(30), "ten slots", || {
        let h = history(&api, "tick");
        (h.len() >= 10).then_some(h)
    });
    assert_eq!(count(&slots, "fired"), slots.len(), "{slots:#?}");
    assert_contiguous(&slots);
    assert!(slots.iter().all(|s| s.run_id.is_some()));
    let lags: Vec<i64> = slots
        .iter()
        .map(|s| (s.recorded_at - s.slot).num_milliseconds())
        .collect();
    eprintln!("fire lag (ms, recorded - slot): {lags:?}");
}

#[test]
fn overlap_skip_skips_slots_while_a_run_is_active() {
    let ws = Workspace::new();
    every_second(&ws, "slow", "", "sleep 2.5");
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);
    let slots = wait_for(Duration::from_secs(30), "eight slots", || {
        let h = history(&api, "slow");
        (h.len() >= 8).then_some(h)
    });
    assert_contiguous(&slots);
    assert!(count(&slots, "fired") >= 2, "{slots:#?}");
    assert!(count(&slots, "skipped-overlap") >= 4, "{slots:#?}");
    // No two runs of the workflow overlapped.
    api.assert_runs_never_overlap("slow");
}

#[test]
fn overlap_queue_runs_every_slot_one_after_another() {
    let ws = Workspace::new();
    every_second(&ws, "serial", "overlap: queue\n", "sleep 1.5");
    let p = Principal::start(
        &ws,
        &["--with-agent", "--max-concurrent-workflows", "4"],
        &[],
    );
    let api = Api::connect(&p.api);
    let slots = wait_for(Duration::from_secs(30), "six slots", || {
        let h = history(&api, "serial");
        (h.len() >= 6).then_some(h)
    });
    assert_eq!(count(&slots, "fired"), slots.len());
    assert_contiguous(&slots);
    // Runs pile up in the queue instead of running side by side, even with free slots.
    wait_for(Duration::from_secs(30), "three finished runs", || {
        let done = api
            .runs("serial")
            .iter()
            .filter(|r| r.finished_at.is_some())
            .count();
        (done >= 3).then_some(())
    });
    api.assert_runs_never_overlap("serial");
    assert!(
        api.status().queue_length >= 1,
        "later slots wait in the queue"
    );
}

/// Runs the principal for a few slots, stops it for 5 s, restarts it and returns the history.
fn downtime(catchup: &str) -> Vec<SlotRecord> {
    let ws = Workspace::new();
    every_second(
        &ws,
        "job",
        &format!("overlap: allow\ncatchup: {catchup}\n"),
        "true",
    );
    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    wait_for(Duration::from_secs(20), "two slots", || {
        (history(&api, "job").len() >= 2).then_some(())
    });
    p.daemon.signal(Signal::SIGTERM);
    assert!(p.daemon.wait_exit(Duration::from_secs(20)).success());
    let before = std::time::Instant::now();
    // The scenario itself: the principal is down for five seconds.
    std::thread::sleep(Duration::from_secs(5));
    let p = Principal::start(&ws, &[], &[]);
    eprintln!("principal was down for {:?}", before.elapsed());
    let api = Api::connect(&p.api);
    let after_restart = |h: &[SlotRecord]| {
        h.iter()
            .filter(|s| {
                s.fate != "fired"
                    || s.recorded_at > chrono::Utc::now() - chrono::Duration::seconds(2)
            })
            .count()
    };
    wait_for(Duration::from_secs(20), "a slot after the restart", || {
        let h = history(&api, "job");
        (after_restart(&h) >= 1
            && h.last().is_some_and(|s| {
                s.fate == "fired" && s.slot > chrono::Utc::now() - chrono::Duration::seconds(3)
            }))
        .then_some(())
    });
    let slots = history(&api, "job");
    assert_contiguous(&slots);
    slots
}

#[test]
fn catchup_none_records_missed_slots_and_runs_none() {
    let slots = downtime("none");
    assert_eq!(count(&slots, "caught-up"), 0, "{slots:#?}");
    assert!(count(&slots, "missed") >= 4, "{slots:#?}");
}

#[test]
fn catchup_latest_runs_only_the_latest_missed_slot() {
    let slots = downtime("latest");
    assert_eq!(count(&slots, "caught-up"), 1, "{slots:#?}");
    assert!(count(&slots, "missed") >= 3, "{slots:#?}");
    let caught = slots.iter().position(|s| s.fate == "caught-up").unwrap();
    assert!(slots[..caught]
        .iter()
        .rev()
        .take_while(|s| s.fate != "fired")
        .all(|s| s.fate == "missed"));
}

#[test]
fn catchup_all_runs_every_missed_slot() {
    let slots = downtime("all");
    assert_eq!(count(&slots, "missed"), 0, "{slots:#?}");
    assert!(count(&slots, "caught-up") >= 4, "{slots:#?}");
    assert!(slots
        .iter()
        .filter(|s| s.fate == "caught-up")
        .all(|s| s.run_id.is_some()));
}

#[test]
fn pause_survives_a_restart_and_resume_fires_again() {
    let ws = Workspace::new();
    every_second(&ws, "job", "overlap: allow\n", "true");
    let mut p = Principal::start(&ws, &[], &[]);
    let cli = |api: &str, args: &[&str]| {
        let mut full = vec!["--principal", api];
        full.extend_from_slice(args);
        ws.run(&full)
    };
    let paused = cli(&p.api, &["schedule", "pause", "job"]);
    assert_eq!(paused.code, Some(0), "{}", paused.stderr);
    p.daemon.signal(Signal::SIGTERM);
    assert!(p.daemon.wait_exit(Duration::from_secs(20)).success());
    let p = Principal::start(&ws, &[], &[]);
    let list = cli(&p.api, &["schedule", "list", "--json"]).json();
    assert_eq!(list[0]["workflow_id"], "job");
    assert_eq!(list[0]["paused"], true);
    let api = Api::connect(&p.api);
    wait_for(Duration::from_secs(20), "paused slots", || {
        (count(&history(&api, "job"), "paused") >= 2).then_some(())
    });
    let resumed = cli(&p.api, &["schedule", "resume", "job"]);
    assert_eq!(resumed.code, Some(0));
    wait_for(
        Duration::from_secs(20),
        "a fired slot after resuming",
        || {
            history(&api, "job")
                .last()
                .is_some_and(|s| s.fate == "fired")
                .then_some(())
        },
    );
    let human = cli(&p.api, &["schedule", "history", "job"]);
    assert!(
        human.stdout.contains("paused") && human.stdout.contains("fired"),
        "{}",
        human.stdout
    );
    let unknown = cli(&p.api, &["schedule", "pause", "jbo"]);
    assert_eq!(unknown.code, Some(4));
    assert!(
        unknown.stderr.contains("did you mean `job`?"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn explain_marks_dst_changes() {
    let ws = Workspace::new();
    ws.write(
        "workflows/london.yml",
        "name: L\ncron: \"0 9 * * *\"\ntimezone: Europe/London\nstart_time: 2030-03-28T00:00:00+00:00\n\
         tasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    // Offline: no principal at this address, so the files are read.
    let out = ws.run(&[
        "--principal",
        "tcp://127.0.0.1:9",
        "schedule",
        "explain",
        "london",
        "--count",
        "4",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let doc = out.json();
    let fires = doc["fires"].as_array().unwrap();
    // 2030-03-31 is the spring-forward day in London.
    assert_eq!(fires[0]["local"], "2030-03-28T09:00:00.000+00:00");
    assert_eq!(fires[3]["local"], "2030-03-31T09:00:00.000+01:00");
    assert_eq!(fires[3]["utc"], "2030-03-31T08:00:00.000Z");
    let changes: Vec<bool> = fires
        .iter()
        .map(|f| f["dst_change"].as_bool().unwrap())
        .collect();
    assert_eq!(changes, [false, false, false, true]);
}

#[test]
fn workflow_files_are_reloaded_and_a_broken_edit_keeps_the_last_valid_version() {
    let ws = Workspace::new();
    ws.write(
        "wf/first.yml",
        "name: First\ntasks:\n  a: {name: A, config: !Shell {script: \"echo v1\"}}\n",
    );
    let p = Principal::start(&ws, &["--with-agent"], &[]);
    let api = Api::connect(&p.api);

    // A new file becomes runnable without a restart.
    let written = std::time::Instant::now();
    ws.write(
        "wf/added.yml",
        "name: Added\ntasks:\n  a: {name: A, config: !Shell {script: \"echo added\"}}\n",
    );
    let run = wait_for(Duration::from_secs(10), "the new workflow", || {
        match api.ask(ControlRequest::Trigger {
            workflow: "added".into(),
            params: Default::default(),
            trigger: None,
        }) {
            Ok(ControlReply::Triggered { run_id }) => Some(run_id.to_string()),
            _ => None,
        }
    });
    eprintln!(
        "new workflow runnable {:?} after the file was written",
        written.elapsed()
    );
    assert_eq!(
        api.wait_done(&run, Duration::from_secs(30)).summary.status,
        cdktr::model::RunStatus::Completed
    );

    // A broken edit: the error is visible, the last valid version still runs.
    ws.write(
        "wf/first.yml",
        "name: First\ntasks:\n  a: {name: A, depnds: [], config: !Shell {script: \"echo v2\"}}\n",
    );
    let list = wait_for(
        Duration::from_secs(10),
        "the broken edit to be seen",
        || {
            let out = ws.run(&["--principal", &p.api, "workflow", "list"]);
            out.stdout
                .contains("previous version active")
                .then_some(out.stdout)
        },
    );
    assert!(list.contains("active (file now invalid)"), "{list}");
    let run = api.trigger("first");
    api.wait_done(&run, Duration::from_secs(30));
    assert_eq!(api.logs(&run)[0].line, "v1");

    // Fixed, and reloaded on demand: the new version runs.
    ws.write(
        "wf/first.yml",
        "name: First\ntasks:\n  a: {name: A, config: !Shell {script: \"echo v3\"}}\n",
    );
    let reload = ws.run(&["--principal", &p.api, "workflow", "reload"]);
    assert_eq!(reload.code, Some(0), "{}", reload.stderr);
    assert!(
        reload.stdout.contains("2 workflows active, 0 invalid"),
        "{}",
        reload.stdout
    );
    let run = api.trigger("first");
    api.wait_done(&run, Duration::from_secs(30));
    assert_eq!(api.logs(&run)[0].line, "v3");

    // A removed file's workflow is gone.
    std::fs::remove_file(ws.path().join("wf/added.yml")).unwrap();
    p.daemon.signal(Signal::SIGHUP);
    wait_for(Duration::from_secs(10), "the removal", || {
        api.ask(ControlRequest::ShowWorkflow { id: "added".into() })
            .is_err()
            .then_some(())
    });
}
