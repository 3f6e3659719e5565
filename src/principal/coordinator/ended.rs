//! The runs that ended lately, so a record that arrives after its run ended is kept as a late
//! record (evidence of what the agent did), while a record for a run this principal never
//! had, or one long gone, is acknowledged and dropped: nobody can fill the store with them.

use std::collections::{HashSet, VecDeque};

use crate::model::RunId;

/// How many ended runs are remembered.
const REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct Ended {
    set: HashSet<RunId>,
    order: VecDeque<RunId>,
}

impl Ended {
    pub fn remember(&mut self, run_id: RunId) {
        if self.set.insert(run_id.clone()) {
            self.order.push_back(run_id);
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub fn contains(&self, run_id: &RunId) -> bool {
        self.set.contains(run_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_ended_runs_only() {
        let mut ended = Ended::default();
        for i in 0..=REMEMBERED {
            ended.remember(RunId::new(format!("r{i}")));
        }
        assert!(!ended.contains(&RunId::new("r0")));
        assert!(ended.contains(&RunId::new("r1")));
        assert!(ended.contains(&RunId::new(format!("r{REMEMBERED}"))));
    }
}
