//! Who may send which request. With authentication on, every request carries the name its
//! sender authenticated as; the keys file gives that name's role, and each request belongs to
//! roles: agents act only for their own agent id, viewers only read, trigger credentials only
//! trigger, operators do everything a person does (but never speak for an agent).

use std::sync::Arc;

use crate::auth::{KeysFile, LogThrottle};
use crate::model::{AgentId, Role};
use crate::protocol::agent::AgentRequest;
use crate::protocol::control::ControlRequest;
use crate::protocol::{ErrorCode, ErrorReply, Request};

/// The server's gate: None when authentication is off (the principal then listens on
/// loopback only and every local client is trusted).
pub struct Access {
    keys: Option<Arc<KeysFile>>,
    logged: LogThrottle,
    /// This host's name: agents on the control socket act only as `NAME@host`.
    host: String,
}

impl Access {
    pub fn new(keys: Option<Arc<KeysFile>>) -> Access {
        Access {
            keys,
            logged: LogThrottle::default(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }

    /// Who sent a message and as what, if they may send `request`. On the local control
    /// socket everyone is an operator who may also speak for a local agent (opening the
    /// socket was the credential); on TCP the credential's role decides, and without
    /// authentication every (loopback) client is an operator.
    pub fn check(&self, sender: &Sender, request: &Request) -> Result<Caller, ErrorReply> {
        // Read the keys file again if it changed, whoever asks (its changes are audited).
        let current = self.keys.as_ref().map(|k| k.current());
        if sender.origin == Origin::Local {
            let name = format!("local:{}", super::local::peer_user(sender.peer.as_deref()));
            if let Request::Agent(r) = request {
                let id = agent_of(r);
                let here = id
                    .as_str()
                    .rsplit_once('@')
                    .is_some_and(|(_, host)| host == self.host);
                if !here {
                    let why = format!(
                        "an agent on the control socket acts only for agents of this host \
                         (NAME@{}), not `{id}`",
                        self.host
                    );
                    return Err(self.refuse(&name, &why));
                }
            }
            return Ok(Caller {
                name: Some(name),
                role: Role::Operator,
            });
        }
        let Some(current) = current else {
            return Ok(Caller {
                name: None,
                role: Role::Operator,
            });
        };
        let Some(name) = sender.user.as_deref() else {
            return Err(self.refuse("?", "the request is not authenticated"));
        };
        let Some(entry) = current.by_name(name) else {
            return Err(self.refuse(name, &format!("the credential `{name}` was revoked")));
        };
        permitted(entry.role, name, request).map_err(|why| self.refuse(name, &why))?;
        Ok(Caller {
            name: Some(name.to_owned()),
            role: entry.role,
        })
    }

    fn refuse(&self, name: &str, why: &str) -> ErrorReply {
        if self.logged.due(name) {
            tracing::warn!(client = name, reason = why, "request refused");
        }
        ErrorReply::new(ErrorCode::Forbidden, why.to_owned())
    }
}

/// Which socket a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The TCP API: CURVE decides who the sender is (when authentication is on).
    Tcp,
    /// The local control socket: whoever could open it is an operator (and may act as a
    /// local agent).
    Local,
}

/// What the transport says about a message's sender.
pub struct Sender {
    pub origin: Origin,
    /// The name CURVE authenticated (TCP with authentication on).
    pub user: Option<String>,
    /// libzmq's `Peer-Address` (the IP, or the local user's ids on the control socket).
    pub peer: Option<String>,
}

/// Who sent a request.
pub struct Caller {
    /// The credential's name, `local:USER` on the control socket; None on TCP when
    /// authentication is off.
    pub name: Option<String>,
    pub role: Role,
}

/// Whether a client named `name` with `role` may send `request`; the reason when not.
pub fn permitted(role: Role, name: &str, request: &Request) -> Result<(), String> {
    match request {
        Request::Agent(r) => {
            if role != Role::Agent {
                return Err(format!("`{name}` ({role}) is not an agent"));
            }
            let id = agent_of(r);
            let own = id.as_str() == name
                || id
                    .as_str()
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('@'));
            if own {
                Ok(())
            } else {
                Err(format!(
                    "`{name}` may act only for agent `{name}` (or `{name}@HOST`), not `{id}`"
                ))
            }
        }
        Request::Control(c) => {
            let needs = needs(c);
            if needs.contains(&role) {
                Ok(())
            } else {
                Err(format!(
                    "`{name}` ({role}) may not send `{}` (it needs {})",
                    kind(c),
                    needs
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ))
            }
        }
    }
}

fn agent_of(request: &AgentRequest) -> &AgentId {
    match request {
        AgentRequest::Register { agent, .. } => &agent.id,
        AgentRequest::Heartbeat { agent_id, .. }
        | AgentRequest::PullWork { agent_id, .. }
        | AgentRequest::Report { agent_id, .. }
        | AgentRequest::Deregister { agent_id } => agent_id,
    }
}

/// The roles that may send a control request.
fn needs(request: &ControlRequest) -> &'static [Role] {
    use ControlRequest as C;
    match request {
        C::Whoami => &[Role::Agent, Role::Operator, Role::Viewer, Role::Trigger],
        C::Trigger { .. } | C::Rerun { .. } => &[Role::Trigger, Role::Operator],
        C::Status
        | C::ListAgents
        | C::ListRuns { .. }
        | C::ShowRun { .. }
        | C::Explain { .. }
        | C::Logs { .. }
        | C::QueryLogs { .. }
        | C::ListWorkflows
        | C::ShowWorkflow { .. }
        | C::ListSchedules
        | C::ScheduleHistory { .. }
        | C::Audit { .. }
        | C::Query { .. }
        | C::Report { .. }
        | C::Warnings { .. } => &[Role::Viewer, Role::Operator],
        C::ReloadWorkflows
        | C::SetSchedulePaused { .. }
        | C::Failpoint { .. }
        | C::Gc { .. }
        | C::Cancel { .. } => &[Role::Operator],
    }
}

/// The request's wire name, for messages.
pub fn kind(request: &ControlRequest) -> String {
    request.name().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(json: serde_json::Value) -> Request {
        Request::Control(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn each_role_sends_only_its_requests() {
        let trigger = control(serde_json::json!({"type": "trigger", "workflow": "w"}));
        let logs = control(serde_json::json!({"type": "logs", "run_id": "r"}));
        let reload = control(serde_json::json!({"type": "reload_workflows"}));
        assert!(permitted(Role::Viewer, "v", &logs).is_ok());
        assert!(permitted(Role::Viewer, "v", &trigger)
            .unwrap_err()
            .contains("needs trigger or operator"));
        assert!(permitted(Role::Trigger, "t", &trigger).is_ok());
        assert!(permitted(Role::Trigger, "t", &logs).is_err());
        assert!(permitted(Role::Operator, "o", &reload).is_ok());
        assert!(permitted(Role::Viewer, "v", &reload).is_err());
        assert!(permitted(Role::Agent, "web1", &logs).is_err());
    }

    #[test]
    fn an_agent_speaks_only_for_its_own_id() {
        let heartbeat = |id: &str| {
            Request::Agent(AgentRequest::Heartbeat {
                agent_id: AgentId::new(id),
                running: vec![],
                free_slots: 1,
                spool: 0,
            })
        };
        assert!(permitted(Role::Agent, "web1", &heartbeat("web1@host-a")).is_ok());
        assert!(permitted(Role::Agent, "web1", &heartbeat("web1")).is_ok());
        assert!(permitted(Role::Agent, "web1", &heartbeat("web10@host")).is_err());
        assert!(permitted(Role::Agent, "web1", &heartbeat("db1@host")).is_err());
        assert!(permitted(Role::Operator, "ops", &heartbeat("ops@host")).is_err());
    }
}
