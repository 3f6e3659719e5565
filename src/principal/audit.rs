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
        ControlRequest::Failpoint { name, duration_ms } => Some((
            "failpoint",
            Some(name.clone()),
            Some(format!("{duration_ms} ms")),
        )),
        _ => None,
    }
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
        target,
        detail,
        outcome: String::new(),
    }))
}

impl Pending {
    /// Stores the entry with the outcome `response` says.
    pub fn finish(self, store: &Store, response: &Response) {
        let mut entry = self.0;
        entry.outcome = match response {
            Response::Error(e) => format!("error: {e}"),
            Response::Control(ControlReply::Triggered { run_id }) => {
                let params = entry.detail.take().unwrap_or_default();
                entry.detail = Some(format!("run {run_id}, params {params}"));
                "ok".into()
            }
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
