//! The runs that ended lately, so a record that arrives after its run ended is kept as a late
//! record (evidence of what the agent did), while a record for a run this principal never
//! had, or one long gone, is acknowledged and dropped: nobody can fill the store with them.

use std::collections::{HashMap, VecDeque};

use crate::model::RunId;
use crate::protocol::agent::{AttemptRef, StopOrder};

/// How many ended runs are remembered.
const REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct Ended {
    /// Each run, with the stop order of its last attempt when it was cancelled (an agent that
    /// still runs it is told to stop).
    set: HashMap<RunId, Option<StopOrder>>,
    order: VecDeque<RunId>,
}

impl Ended {
    pub fn remember(&mut self, run_id: RunId, cancelled: Option<StopOrder>) {
        if self.set.insert(run_id.clone(), cancelled).is_none() {
            self.order.push_back(run_id);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub fn contains(&self, run_id: &RunId) -> bool {
        self.set.contains_key(run_id)
    }

    /// The stop order of `attempt`, when it is the cancelled attempt of a run that ended.
    pub fn cancelled(&self, attempt: &AttemptRef) -> Option<StopOrder> {
        match self.set.get(&attempt.run_id)? {
            Some(order) if order.attempt == attempt.attempt && order.token == attempt.token => {
                Some(order.clone())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_ended_runs_only() {
        let mut ended = Ended::default();
        for i in 0..=REMEMBERED {
            ended.remember(RunId::new(format!("r{i}")), None);
        }
        assert!(!ended.contains(&RunId::new("r0")));
        assert!(ended.contains(&RunId::new("r1")));
        assert!(ended.contains(&RunId::new(format!("r{REMEMBERED}"))));
    }
}
