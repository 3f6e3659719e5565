//! Time as the coordinator and the scheduler see it: the system's in the daemons, moved by hand
//! in tests, so deadlines and schedules are tested without waiting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A clock passed by value. [`Clock::system`] reads the system's clocks; [`Clock::manual`]
/// starts at a given instant and moves only by [`Clock::advance`].
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<Manual>>>,
}

#[derive(Debug)]
struct Manual {
    instant: Instant,
    utc: DateTime<Utc>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(Mutex::new(Manual {
                instant: Instant::now(),
                utc: start,
            }))),
        }
    }

    /// Monotonic time, for deadlines.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => lock(m).instant,
        }
    }

    /// Wall-clock time, for records and schedules.
    pub fn utc(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(m) => lock(m).utc,
        }
    }

    /// Moves a manual clock forward (both readings together); a system clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let mut m = lock(m);
            m.instant += by;
            m.utc += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        }
    }
}

fn lock(m: &Mutex<Manual>) -> std::sync::MutexGuard<'_, Manual> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-03-29T00:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        let (i, u) = (clock.now(), clock.utc());
        assert_eq!((clock.now(), clock.utc()), (i, u));
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - i, Duration::from_secs(90));
        assert_eq!(clock.utc() - u, chrono::Duration::seconds(90));
    }
}
