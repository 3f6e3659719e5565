//! Refusals are logged at most once a minute per client, so a client retrying in a loop
//! cannot flood the log. One throttle serves the ZAP handler and the server's role checks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one client's refusals are logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LogThrottle {
    last: Mutex<HashMap<String, Instant>>,
}

impl LogThrottle {
    /// Whether a refusal of `who` should be logged now (then it is not again for a minute).
    pub fn due(&self, who: &str) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last
            .get(who)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY)
        {
            return false;
        }
        last.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        last.insert(who.to_owned(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_minute_per_client() {
        let throttle = LogThrottle::default();
        assert!(throttle.due("a"));
        assert!(!throttle.due("a"));
        assert!(throttle.due("b"));
    }
}
