//! A workflow's schedule: a cron expression evaluated in an IANA time zone.
//!
//! Five fields are standard crontab (minute resolution); six or seven fields put seconds first
//! and an optional year last, as the older cdktr did. Day of week follows crontab: 0 and 7 are
//! Sunday, and `Mon`..`Sun` work.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

/// A parsed cron expression bound to a time zone.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "ScheduleSpec", into = "ScheduleSpec")]
pub struct Schedule {
    expr: String,
    timezone: Tz,
    cron: Cron,
}

/// The serialised form of a [`Schedule`]; parsing it again re-validates it.
#[derive(Clone, Serialize, Deserialize)]
struct ScheduleSpec {
    cron: String,
    timezone: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("invalid cron expression `{expr}`: {reason}")]
    Cron { expr: String, reason: String },
    #[error("unknown time zone `{0}` (expected an IANA name such as `Europe/London` or `UTC`)")]
    TimeZone(String),
}

impl Schedule {
    pub fn new(expr: &str, timezone: Tz) -> Result<Self, ScheduleError> {
        let fields = expr.split_whitespace().count();
        let shortcut = expr.trim_start().starts_with('@');
        if !shortcut && !(5..=7).contains(&fields) {
            return Err(ScheduleError::Cron {
                expr: expr.to_owned(),
                reason: format!(
                    "expected 5 fields (minute hour day month weekday) or 6/7 fields \
                     (second first, optional year last), found {fields}"
                ),
            });
        }
        let cron = Cron::from_str(expr).map_err(|e| ScheduleError::Cron {
            expr: expr.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            expr: expr.to_owned(),
            timezone,
            cron,
        })
    }

    pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
        Tz::from_str(name).map_err(|_| ScheduleError::TimeZone(name.to_owned()))
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Whether the expression has a seconds field (6 or 7 fields).
    pub fn has_seconds(&self) -> bool {
        self.expr.split_whitespace().count() >= 6
    }

    /// The first fire instant strictly after `after`.
    ///
    /// DST: a local time that does not exist (spring forward) fires once, at the next valid
    /// instant; a local time that occurs twice (fall back) fires once, at its first occurrence.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        let mut cursor = after.with_timezone(&self.timezone);
        // Skip the instants of the repeated hour (3,600 for a seconds cron); bounded so that a
        // pathological expression can never spin.
        for _ in 0..10_000 {
            let next = self.cron.find_next_occurrence(&cursor, false).ok()?;
            if !is_repeat_of_an_earlier_instant(&next) {
                return Some(next);
            }
            cursor = next;
        }
        None
    }

    /// The next `count` fire instants strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let mut out = Vec::with_capacity(count);
        let mut cursor = after;
        while out.len() < count {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            cursor = next.with_timezone(&Utc);
            out.push(next);
        }
        out
    }
}

/// True for the second instant of a wall-clock time that occurs twice (the hour repeated when
/// clocks go back).
fn is_repeat_of_an_earlier_instant(t: &DateTime<Tz>) -> bool {
    use chrono::{LocalResult, TimeZone};
    match t.timezone().from_local_datetime(&t.naive_local()) {
        LocalResult::Ambiguous(first, _) => first != *t,
        _ => false,
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expr", &self.expr)
            .field("timezone", &self.timezone)
            .finish()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr && self.timezone == other.timezone
    }
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = ScheduleError;

    fn try_from(spec: ScheduleSpec) -> Result<Self, Self::Error> {
        Schedule::new(&spec.cron, Schedule::parse_timezone(&spec.timezone)?)
    }
}

impl From<Schedule> for ScheduleSpec {
    fn from(s: Schedule) -> Self {
        ScheduleSpec {
            cron: s.expr,
            timezone: s.timezone.name().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
    }

    #[test]
    fn five_fields_are_crontab_minutes() {
        let s = Schedule::new("*/15 * * * *", Tz::UTC).unwrap();
        let next = s.upcoming(at(2025, 1, 1, 0, 0, 0), 2);
        assert_eq!(next[0].with_timezone(&Utc), at(2025, 1, 1, 0, 15, 0));
        assert_eq!(next[1].with_timezone(&Utc), at(2025, 1, 1, 0, 30, 0));
        assert!(!s.has_seconds());
    }

    #[test]
    fn six_fields_put_seconds_first() {
        let s = Schedule::new("30 0 9 * * *", Tz::UTC).unwrap();
        let next = s.next_after(at(2025, 1, 1, 0, 0, 0)).unwrap();
        assert_eq!(next.with_timezone(&Utc), at(2025, 1, 1, 9, 0, 30));
        assert!(s.has_seconds());
    }

    #[test]
    fn seven_fields_take_a_year() {
        let s = Schedule::new("0 0 12 1 1 * 2030", Tz::UTC).unwrap();
        let next = s.next_after(at(2025, 1, 1, 0, 0, 0)).unwrap();
        assert_eq!(next.with_timezone(&Utc), at(2030, 1, 1, 12, 0, 0));
    }

    #[test]
    fn day_of_week_follows_crontab() {
        // 2025-01-05 is a Sunday.
        for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * Sun", "0 0 9 * * SUN"] {
            let s = Schedule::new(expr, Tz::UTC).unwrap();
            let next = s.next_after(at(2025, 1, 1, 0, 0, 0)).unwrap();
            assert_eq!(next.with_timezone(&Utc), at(2025, 1, 5, 9, 0, 0), "{expr}");
        }
        // Mon-Fri starting on Saturday 2025-01-04 lands on Monday the 6th.
        let s = Schedule::new("0 30 9 * * Mon-Fri", Tz::UTC).unwrap();
        let next = s.next_after(at(2025, 1, 4, 0, 0, 0)).unwrap();
        assert_eq!(next.with_timezone(&Utc), at(2025, 1, 6, 9, 30, 0));
    }

    #[test]
    fn evaluates_in_the_workflow_zone() {
        let tz = Schedule::parse_timezone("Europe/London").unwrap();
        let s = Schedule::new("0 9 * * *", tz).unwrap();
        // In July London is UTC+1, so 09:00 local is 08:00 UTC.
        let next = s.next_after(at(2025, 7, 1, 0, 0, 0)).unwrap();
        assert_eq!(next.with_timezone(&Utc), at(2025, 7, 1, 8, 0, 0));
    }

    #[test]
    fn rejects_bad_expressions_and_zones() {
        assert!(matches!(
            Schedule::new("* * *", Tz::UTC),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            Schedule::new("61 * * * *", Tz::UTC),
            Err(ScheduleError::Cron { .. })
        ));
        assert!(matches!(
            Schedule::new("not a cron at all", Tz::UTC),
            Err(ScheduleError::Cron { .. })
        ));
        assert_eq!(
            Schedule::parse_timezone("Mars/Olympus"),
            Err(ScheduleError::TimeZone("Mars/Olympus".into()))
        );
    }

    fn fires(expr: &str, zone: &str, from: DateTime<Utc>, n: usize) -> Vec<String> {
        let s = Schedule::new(expr, Schedule::parse_timezone(zone).unwrap()).unwrap();
        s.upcoming(from, n)
            .iter()
            .map(|t| {
                format!(
                    "{} = {}",
                    t.format("%m-%d %H:%M:%S %Z"),
                    t.with_timezone(&Utc).format("%H:%M:%S")
                )
            })
            .collect()
    }

    #[test]
    fn spring_forward_missing_time_fires_once_at_the_next_valid_instant() {
        // Europe/London: 2025-03-30 01:00 GMT -> 02:00 BST; 01:30 does not exist.
        assert_eq!(
            fires("30 1 * * *", "Europe/London", at(2025, 3, 29, 12, 0, 0), 3),
            [
                "03-30 02:00:00 BST = 01:00:00",
                "03-31 01:30:00 BST = 00:30:00",
                "04-01 01:30:00 BST = 00:30:00"
            ][..]
        );
    }

    #[test]
    fn fall_back_repeated_time_fires_once() {
        // Europe/London: 2025-10-26 02:00 BST -> 01:00 GMT; 01:30 happens twice.
        assert_eq!(
            fires("30 1 * * *", "Europe/London", at(2025, 10, 25, 12, 0, 0), 2),
            [
                "10-26 01:30:00 BST = 00:30:00",
                "10-27 01:30:00 GMT = 01:30:00"
            ][..]
        );
    }

    #[test]
    fn new_york_transitions() {
        // 2025-03-09 02:00 EST -> 03:00 EDT: 02:30 does not exist.
        let spring = fires(
            "30 2 * * *",
            "America/New_York",
            at(2025, 3, 8, 12, 0, 0),
            2,
        );
        assert_eq!(spring[0], "03-09 03:00:00 EDT = 07:00:00", "{spring:?}");
        assert_eq!(spring[1], "03-10 02:30:00 EDT = 06:30:00");
        // 2025-11-02 02:00 EDT -> 01:00 EST: 01:30 happens twice, fires once.
        let fall = fires(
            "30 1 * * *",
            "America/New_York",
            at(2025, 11, 1, 12, 0, 0),
            2,
        );
        assert_eq!(
            fall,
            [
                "11-02 01:30:00 EDT = 05:30:00",
                "11-03 01:30:00 EST = 06:30:00"
            ][..]
        );
        // Every 20 minutes across the repeated hour: each wall-clock time once, strictly later.
        let every = fires(
            "*/20 * * * *",
            "America/New_York",
            at(2025, 11, 2, 5, 0, 0),
            6,
        );
        assert_eq!(
            every,
            [
                "11-02 01:20:00 EDT = 05:20:00",
                "11-02 01:40:00 EDT = 05:40:00",
                "11-02 02:00:00 EST = 07:00:00",
                "11-02 02:20:00 EST = 07:20:00",
                "11-02 02:40:00 EST = 07:40:00",
                "11-02 03:00:00 EST = 08:00:00"
            ][..]
        );
    }

    #[test]
    fn round_trips_through_json() {
        let tz = Schedule::parse_timezone("America/New_York").unwrap();
        let s = Schedule::new("0 30 9 * * Mon-Fri", tz).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back: Schedule = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
        let bad = r#"{"cron":"nope","timezone":"UTC"}"#;
        assert!(serde_json::from_str::<Schedule>(bad).is_err());
    }
}
