//! Event listeners: turn outside events into runs. [`TriggerClient`] is the small API a Rust
//! listener needs; [`webhook`] (HTTP) and [`files`] (file arrival) are the two shipped with
//! cdktr. Listeners in other languages send the documented trigger request
//! (`docs/protocol.md`); `examples/trigger.py` is one in Python.

pub mod files;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::RunId;
use crate::protocol::control::{ControlReply, ControlRequest};
use crate::transport::{Client, ClientError};

/// Triggers runs on a principal over one long-lived connection.
#[derive(Clone)]
pub struct TriggerClient {
    client: Client,
}

impl TriggerClient {
    pub fn connect(endpoint: &str, timeout: Duration) -> TriggerClient {
        TriggerClient {
            client: Client::connect(endpoint, timeout),
        }
    }

    /// Queues a run of `workflow` with `params`, recorded with `source` (`event:<name>`, `api`
    /// ...). Returns the run id once the queued run is durable.
    pub async fn trigger(
        &self,
        workflow: &str,
        params: BTreeMap<String, String>,
        source: &str,
    ) -> Result<RunId, ClientError> {
        let request = ControlRequest::Trigger {
            workflow: workflow.to_owned(),
            params,
            trigger: Some(source.to_owned()),
        };
        match self.client.control(request).await? {
            ControlReply::Triggered { run_id } => Ok(run_id),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}
