//! The audit log: every control action that changes something (trigger, pause, resume,
//! reload, failpoint) is stored with who sent it, from where, and how it ended; so is every
//! change of the keys file. `cdktr audit` reads it back.

use chrono::Utc;

use super::access::{Caller, Origin, Sender};
use crate::auth::Keys;
use crate::protocol::control::{AuditEntry, ControlReply, ControlRequest};
use crate::protocol::Response;
use crate::store::{Store, Write};

/// The name an audit entry and a run record for whoever sent a request.
pub fn actor(caller: &Caller) -> String {
    caller.name.clone().unwrap_or_else(|| "anonymous".into())
}

/// The action a request takes, with its target and details, if it is one the audit log
/// keeps (reads are not kept).
fn action(request: &ControlRequest) -> Option<(&'static str, Option<String>, Option<String>)> {
    match request {
        ControlRequest::Trigger {
            workflow, params, ..
        } => Some((
            "trigger",
            Some(workflow.clone()),
            Some(serde_json::to_string(params).unwrap_or_default()),
        )),
        ControlRequest::SetSchedulePaused { workflow, paused } => Some((
            if *paused { "pause" } else { "resume" },
            Some(workflow.clone()),
            None,
        )),
        ControlRequest::ReloadWorkflows => Some(("reload", None, None)),
        ControlRequest::Rerun {
            run_id,
            failed_only,
            latest,
            params,
        } => Some((
            "rerun",
            Some(run_id.clone()),
            Some(format!(
                "failed_only={failed_only} latest={latest} params={}",
                serde_json::to_string(params).unwrap_or_default()
            )),
        )),
        ControlRequest::Cancel { run_id, reason } => {
            Some(("cancel", Some(run_id.clone()), reason.clone()))
        }
        ControlRequest::Failpoint { name, duration_ms } => Some((
            "failpoint",
            Some(name.clone()),
            Some(format!("{duration_ms} ms")),
        )),
        ControlRequest::Gc { dry_run: false } => Some(("gc", None, None)),
        _ => None,
    }
}

/// Longest target kept (a workflow name a client sent); the rest is cut.
const MAX_TARGET: usize = 256;
/// Longest detail kept (a trigger's parameters).
const MAX_DETAIL: usize = 4096;

/// `text` cut to at most `max` bytes (on a character boundary), marked when cut.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// An action being answered: its entry waits for the outcome.
pub struct Pending(AuditEntry);

/// The entry of `request` when it is an action the audit log keeps.
pub fn begin(sender: &Sender, caller: &Caller, request: &ControlRequest) -> Option<Pending> {
    let (action, target, detail) = action(request)?;
    let peer = match sender.origin {
        Origin::Local => Some("local".into()),
        Origin::Tcp => sender.peer.clone(),
    };
    Some(Pending(AuditEntry {
        ts: Utc::now(),
        actor: actor(caller),
        role: caller.role.to_string(),
        peer,
        action: action.into(),
        target: target.map(|t| cut(t, MAX_TARGET)),
        detail: detail.map(|d| cut(d, MAX_DETAIL)),
        outcome: String::new(),
    }))
}

impl Pending {
    /// The entry of a trigger, for the coordinator to store in the same transaction as the
    /// run it queues (see [`AuditEntry::queued`]).
    pub fn entry(&self) -> AuditEntry {
        self.0.clone()
    }

    /// Stores the entry with the outcome `response` says; a trigger that queued a run was
    /// stored with it already.
    pub fn finish(self, store: &Store, response: &Response) {
        let mut entry = self.0;
        entry.outcome = match response {
            Response::Control(ControlReply::Triggered { .. }) => return,
            Response::Error(e) => cut(format!("error: {e}"), MAX_DETAIL),
            _ => "ok".into(),
        };
        store.write_later(vec![Write::Audit(entry)]);
    }
}

/// Records what changed between two readings of the keys file.
pub fn keys_changed(store: &Store, before: &Keys, after: &Keys) {
    let mut writes = Vec::new();
    let entry = |action: &str, name: &str, detail: String| {
        Write::Audit(AuditEntry {
            ts: Utc::now(),
            actor: "keys-file".into(),
            role: String::new(),
            peer: None,
            action: action.into(),
            target: Some(name.into()),
            detail: Some(detail),
            outcome: "ok".into(),
        })
    };
    for new in &after.entries {
        match before.by_name(&new.name) {
            None => writes.push(entry("key_added", &new.name, format!("role {}", new.role))),
            Some(old) if old != new => writes.push(entry(
                "key_changed",
                &new.name,
                format!("role {} -> {}", old.role, new.role),
            )),
            Some(_) => {}
        }
    }
    for old in &before.entries {
        if after.by_name(&old.name).is_none() {
            writes.push(entry(
                "key_removed",
                &old.name,
                format!("role {}", old.role),
            ));
        }
    }
    if !writes.is_empty() {
        store.write_later(writes);
    }
}
