//! Slots missed while the principal was down: which run now and which are recorded as
//! missed, by the workflow's `catchup` policy.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::model::{Catchup, Workflow};

/// Most slots listed one by one when working out what was missed during a downtime.
const MAX_SLOTS_SCANNED: usize = 200_000;

/// Missed slots older than this before now are not enumerated (a per-second cron over a long
/// downtime would mean millions): they are summarised in one note.
const CATCHUP_WINDOW: chrono::Duration = chrono::Duration::hours(48);

/// What to do with the slots between the last handled one and now.
#[derive(Debug, Default, PartialEq)]
pub struct CatchupPlan {
    /// Slots to run now, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Slots that will not run.
    pub missed: Vec<DateTime<Utc>>,
    /// Missed slots beyond the scan limit, not listed one by one.
    pub unlisted: bool,
}

/// The slots of `w` after `last` up to `now` (none before `start_time`), split by its catchup
/// policy; `all` runs at most `limit` (the latest ones).
pub fn catchup_plan(
    w: &Workflow,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: usize,
) -> CatchupPlan {
    let Some(schedule) = &w.schedule else {
        return CatchupPlan::default();
    };
    let start = w.start_time.map(|t| t.with_timezone(&Utc));
    let mut slots = VecDeque::new();
    let mut unlisted = last < now - CATCHUP_WINDOW;
    let mut cursor = last.max(now - CATCHUP_WINDOW);
    while let Some(next) = schedule.next_after(cursor).map(|t| t.with_timezone(&Utc)) {
        if next > now {
            break;
        }
        cursor = next;
        if start.is_some_and(|s| next < s) {
            continue;
        }
        slots.push_back(next);
        if slots.len() > MAX_SLOTS_SCANNED {
            slots.pop_front();
            unlisted = true;
        }
    }
    let mut slots: Vec<DateTime<Utc>> = slots.into();
    let keep = match w.catchup {
        Catchup::None => 0,
        Catchup::Latest => 1,
        Catchup::All => limit,
    }
    .min(slots.len());
    let run = slots.split_off(slots.len() - keep);
    CatchupPlan {
        run,
        missed: slots,
        unlisted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WorkflowId;
    use crate::workflow::parse::parse_workflow;
    use chrono::TimeZone;

    fn workflow(catchup: &str, start: Option<&str>) -> Workflow {
        let start = start
            .map(|s| format!("start_time: {s}\n"))
            .unwrap_or_default();
        let text = format!(
            "name: W\ncron: \"*/10 * * * * *\"\ncatchup: {catchup}\n{start}tasks:\n  a: {{name: A, config: !Shell {{script: x}}}}\n"
        );
        parse_workflow(WorkflowId::new("w"), std::path::Path::new("w.yml"), &text)
            .workflow
            .expect("valid")
    }

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap()
            + chrono::Duration::seconds(s.into())
    }

    #[test]
    fn catchup_none_latest_all() {
        // Last handled slot 00:00:00, now 00:00:55: slots 10, 20, 30, 40, 50 were missed.
        let none = catchup_plan(&workflow("none", None), t(0), t(55), 100);
        assert_eq!((none.run.len(), none.missed.len()), (0, 5));
        let latest = catchup_plan(&workflow("latest", None), t(0), t(55), 100);
        assert_eq!(latest.run, vec![t(50)]);
        assert_eq!(latest.missed, vec![t(10), t(20), t(30), t(40)]);
        let all = catchup_plan(&workflow("all", None), t(0), t(55), 100);
        assert_eq!(all.run, vec![t(10), t(20), t(30), t(40), t(50)]);
        assert!(all.missed.is_empty());
        let bounded = catchup_plan(&workflow("all", None), t(0), t(55), 2);
        assert_eq!(bounded.run, vec![t(40), t(50)]);
        assert_eq!(bounded.missed, vec![t(10), t(20), t(30)]);
    }

    #[test]
    fn a_long_downtime_is_summarised_not_enumerated() {
        // A per-second cron, last handled three days ago: only the last 48 h are listed.
        let w = workflow("none", None);
        let now = t(0) + chrono::Duration::hours(72);
        let plan = catchup_plan(&w, t(0), now, 100);
        assert!(plan.unlisted);
        assert!(plan
            .missed
            .first()
            .is_some_and(|s| *s >= now - CATCHUP_WINDOW));
        assert_eq!(plan.missed.len(), MAX_SLOTS_SCANNED.min(48 * 360));
    }

    #[test]
    fn catchup_respects_start_time_and_an_exact_boundary() {
        let w = workflow("all", Some("2025-01-01T00:00:35+00:00"));
        assert_eq!(catchup_plan(&w, t(0), t(55), 100).run, vec![t(40), t(50)]);
        // A slot exactly at `now` is due; the last handled slot itself is not repeated.
        assert_eq!(
            catchup_plan(&workflow("all", None), t(10), t(30), 100).run,
            vec![t(20), t(30)]
        );
    }
}
