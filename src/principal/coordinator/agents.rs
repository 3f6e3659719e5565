//! The agent registry: who is connected, their capacity, their runs, their pending long poll.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Reply;
use crate::model::{AgentId, AgentState, RunId};
use crate::protocol::agent::{AgentInfo, AgentReply};
use crate::protocol::control::AgentView;
use crate::store::Write;

/// How long a lost or gone agent stays listed.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Where a waiting long poll is answered.
pub type PullReply = Reply<AgentReply>;

pub struct Entry {
    pub info: AgentInfo,
    pub registered_at: DateTime<Utc>,
    pub last_seen: Instant,
    pub last_seen_at: DateTime<Utc>,
    pub runs: BTreeSet<RunId>,
    pub state: AgentState,
    pub pull: Option<Pull>,
    /// Records its last heartbeat said were waiting in its spool.
    pub spool: u64,
}

pub struct Pull {
    pub reply: PullReply,
    /// What the agent says it has free; refreshed by its heartbeats while the pull waits.
    pub free_slots: u32,
    pub expires: Instant,
}

#[derive(Default)]
pub struct Registry {
    agents: BTreeMap<AgentId, Entry>,
}

impl Registry {
    /// Registers (or re-registers) an agent; it is alive from now on. Returns a pull left by
    /// the agent's previous connection (to be answered with nothing), and whether this is a
    /// new process under a name that was alive (its earlier runs are gone).
    pub fn register(
        &mut self,
        info: AgentInfo,
        now: Instant,
        at: DateTime<Utc>,
    ) -> (Option<PullReply>, bool) {
        let id = info.id.clone();
        let registered_at = at;
        let entry = self.agents.entry(id).or_insert_with(|| Entry {
            info: info.clone(),
            registered_at,
            last_seen: now,
            last_seen_at: registered_at,
            runs: BTreeSet::new(),
            state: AgentState::Alive,
            pull: None,
            spool: 0,
        });
        let restarted = entry.state == AgentState::Alive && entry.info.instance != info.instance;
        entry.info = info;
        entry.last_seen = now;
        entry.last_seen_at = at;
        if entry.state != AgentState::Alive {
            entry.state = AgentState::Alive;
            entry.registered_at = at;
            entry.runs.clear();
        }
        (entry.pull.take().map(|p| p.reply), restarted)
    }

    /// Records a heartbeat (refreshing a waiting pull's free slots); false if the agent must
    /// register (again) first.
    pub fn heartbeat(
        &mut self,
        id: &AgentId,
        (free_slots, spool): (u32, u64),
        now: Instant,
        at: DateTime<Utc>,
    ) -> bool {
        match self.agents.get_mut(id) {
            Some(e) if e.state == AgentState::Alive => {
                e.last_seen = now;
                e.last_seen_at = at;
                e.spool = spool;
                if let Some(pull) = e.pull.as_mut() {
                    pull.free_slots = free_slots;
                }
                true
            }
            _ => false,
        }
    }

    /// The runs the principal believes this agent holds.
    pub fn runs_of(&self, id: &AgentId) -> Vec<RunId> {
        self.agents
            .get(id)
            .map(|e| e.runs.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn is_alive(&self, id: &AgentId) -> bool {
        self.agents
            .get(id)
            .is_some_and(|e| e.state == AgentState::Alive)
    }

    /// Stores a long poll, returning the one it replaces (which must be answered).
    pub fn set_pull(
        &mut self,
        id: &AgentId,
        free_slots: u32,
        reply: PullReply,
        now: Instant,
        expires: Instant,
    ) -> Option<PullReply> {
        let e = self.agents.get_mut(id)?;
        e.last_seen = now;
        e.pull
            .replace(Pull {
                reply,
                free_slots,
                expires,
            })
            .map(|p| p.reply)
    }

    pub fn take_pull(&mut self, id: &AgentId) -> Option<PullReply> {
        self.agents.get_mut(id)?.pull.take().map(|p| p.reply)
    }

    /// Every alive agent waiting for work, with its free capacity: the smaller of what it says
    /// it has free and its slots minus the runs it holds here (a run stops counting only when
    /// its agent reported it finished), so an agent never gets more runs than it has free
    /// slots.
    pub fn waiting(&self) -> Vec<(AgentId, u32)> {
        self.agents
            .iter()
            .filter(|(_, e)| e.state == AgentState::Alive)
            .filter_map(|(id, e)| {
                let pull = e.pull.as_ref()?;
                let held = u32::try_from(e.runs.len()).unwrap_or(u32::MAX);
                let free = e.info.slots.saturating_sub(held).min(pull.free_slots);
                (free > 0).then(|| (id.clone(), free))
            })
            .collect()
    }

    /// Each alive agent's info and how many runs it holds here.
    pub fn alive(&self) -> Vec<(&AgentInfo, usize)> {
        self.agents
            .values()
            .filter(|e| e.state == AgentState::Alive)
            .map(|e| (&e.info, e.runs.len()))
            .collect()
    }

    pub fn info(&self, id: &AgentId) -> Option<&AgentInfo> {
        self.agents.get(id).map(|e| &e.info)
    }

    pub fn add_run(&mut self, id: &AgentId, run: &RunId) {
        if let Some(e) = self.agents.get_mut(id) {
            e.runs.insert(run.clone());
        }
    }

    pub fn remove_run(&mut self, id: &AgentId, run: &RunId) {
        if let Some(e) = self.agents.get_mut(id) {
            e.runs.remove(run);
        }
    }

    /// Marks an alive agent `lost` or `gone`; returns the runs it held.
    pub fn mark(&mut self, id: &AgentId, state: AgentState) -> Option<Vec<RunId>> {
        let e = self.agents.get_mut(id)?;
        if e.state != AgentState::Alive {
            return None;
        }
        e.state = state;
        if let Some(pull) = e.pull.take() {
            // Nothing more for it: the poll ends now rather than waiting out its expiry.
            let _ = pull.reply.send(Ok(AgentReply::Work {
                assignments: vec![],
                stop: vec![],
            }));
        }
        Some(std::mem::take(&mut e.runs).into_iter().collect())
    }

    pub fn deadlines(&self, timeout: Duration) -> impl Iterator<Item = Instant> + '_ {
        self.agents
            .values()
            .filter(|e| e.state == AgentState::Alive)
            .flat_map(move |e| {
                [
                    Some(e.last_seen + timeout),
                    e.pull.as_ref().map(|p| p.expires),
                ]
            })
            .flatten()
    }

    pub fn silent_since(&self, now: Instant, timeout: Duration) -> Vec<AgentId> {
        self.agents
            .iter()
            .filter(|(_, e)| e.state == AgentState::Alive && e.last_seen + timeout <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn expired_pulls(&mut self, now: Instant) -> Vec<PullReply> {
        self.agents
            .values_mut()
            .filter(|e| e.pull.as_ref().is_some_and(|p| p.expires <= now))
            .filter_map(|e| e.pull.take().map(|p| p.reply))
            .collect()
    }

    /// Forgets agents that have not been alive for [`FORGET_AFTER`] (the store keeps them),
    /// so agent names that come and go cannot grow the registry without end.
    pub fn prune(&mut self, now: Instant) {
        self.agents.retain(|_, e| {
            e.state == AgentState::Alive
                || now.saturating_duration_since(e.last_seen) < FORGET_AFTER
        });
    }

    pub fn counts(&self) -> (usize, usize) {
        let alive = self
            .agents
            .values()
            .filter(|e| e.state == AgentState::Alive)
            .count();
        (alive, self.agents.len())
    }

    pub fn store_write(&self, id: &AgentId) -> Option<Write> {
        let e = self.agents.get(id)?;
        Some(Write::Agent {
            agent_id: id.clone(),
            host: e.info.host.clone(),
            slots: e.info.slots,
            version: e.info.version.clone(),
            state: e.state,
            ts: e.last_seen_at,
            labels: crate::model::Label::texts(&e.info.labels),
        })
    }

    pub fn views(&self) -> Vec<AgentView> {
        self.agents
            .iter()
            .map(|(id, e)| AgentView {
                agent_id: id.clone(),
                host: e.info.host.clone(),
                slots: e.info.slots,
                running: u32::try_from(e.runs.len()).unwrap_or(u32::MAX),
                ready_slots: e.pull.as_ref().map_or(0, |p| p.free_slots),
                state: e.state,
                registered_at: e.registered_at,
                last_heartbeat: e.last_seen_at,
                version: e.info.version.clone(),
                labels: e.info.labels.clone(),
                spool_depth: e.spool,
            })
            .collect()
    }
}
