//! Places for control requests being answered: at most [`MAX_IN_FLIGHT`] in all and
//! [`MAX_PER_PEER`] for one connection, so a client that floods requests (and perhaps never
//! reads the answers) is told it is busy while everyone else is still served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Control requests answered at once; more get `unavailable` (busy) instead of piling up.
pub const MAX_IN_FLIGHT: usize = 256;
/// Control requests one connection may have in flight: half of all, so one client cannot
/// take every place, while one with many callers (the webhook listener serves 64
/// connections on one) is not held back.
pub const MAX_PER_PEER: usize = 128;

#[derive(Debug)]
pub struct ControlSlots {
    total: Arc<Semaphore>,
    per_peer: Mutex<HashMap<Bytes, usize>>,
}

/// One place, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<ControlSlots>,
    peer: Bytes,
    _permit: OwnedSemaphorePermit,
}

impl ControlSlots {
    pub fn new() -> Arc<ControlSlots> {
        Arc::new(ControlSlots {
            total: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            per_peer: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a request from `peer` (its connection's routing id), or why there is none.
    pub fn take(self: &Arc<Self>, peer: &Bytes) -> Result<Slot, String> {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        let mine = per_peer.get(peer).copied().unwrap_or(0);
        if mine >= MAX_PER_PEER {
            return Err(format!(
                "the principal is busy: this connection has {MAX_PER_PEER} control requests in flight; retry shortly"
            ));
        }
        let Ok(permit) = self.total.clone().try_acquire_owned() else {
            return Err(format!(
                "the principal is busy: {MAX_IN_FLIGHT} control requests are in flight; retry shortly"
            ));
        };
        per_peer.insert(peer.clone(), mine + 1);
        Ok(Slot {
            slots: self.clone(),
            peer: peer.clone(),
            _permit: permit,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_peer = self
            .slots
            .per_peer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_cannot_take_every_place() {
        let slots = ControlSlots::new();
        let greedy = Bytes::from_static(b"greedy");
        let held: Vec<Slot> = (0..MAX_PER_PEER)
            .map(|_| slots.take(&greedy).unwrap())
            .collect();
        assert!(slots.take(&greedy).unwrap_err().contains("this connection"));
        let other = slots.take(&Bytes::from_static(b"other")).unwrap();
        drop(held);
        drop(other);
        assert!(
            slots.per_peer.lock().unwrap().is_empty(),
            "places are given back"
        );
        // All connections together stop at the overall limit.
        let many: Vec<Slot> = (0..MAX_IN_FLIGHT)
            .map(|i| slots.take(&Bytes::from(format!("peer{}", i % 64))).unwrap())
            .collect();
        assert!(slots
            .take(&Bytes::from_static(b"late"))
            .unwrap_err()
            .contains("256 control requests"));
        drop(many);
    }
}
