//! `cdktr listen webhook`: `POST /trigger/<workflow>` with a JSON object of parameters queues a
//! run and answers with its id. Requests must carry the shared token
//! (`Authorization: Bearer <token>` or `X-Cdktr-Token: <token>`).
//!
//! The HTTP server (`tiny_http`) is synchronous: it runs on its own thread and hands each
//! request to the async trigger client through the runtime handle.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;
use tiny_http::{Header, Method, Response, Server};

use crate::protocol::ErrorCode;
use crate::transport::Client;
use crate::transport::ClientError;

/// Larger request bodies are refused.
const MAX_BODY: u64 = 1024 * 1024;

pub struct Webhook {
    server: Server,
}

impl Webhook {
    /// Binds the listener (`127.0.0.1:0` picks a free port; see [`Webhook::address`]).
    pub fn bind(address: &str) -> anyhow::Result<Webhook> {
        let server = Server::http(address)
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        Ok(Webhook { server })
    }

    pub fn address(&self) -> String {
        self.server
            .server_addr()
            .to_ip()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// Serves until the process ends. `token`: the shared secret, or None for no auth.
    pub fn serve(self, client: Client, token: Option<String>, runtime: tokio::runtime::Handle) {
        for mut request in self.server.incoming_requests() {
            let (status, body) = handle(&mut request, &client, token.as_deref(), &runtime);
            let json = Header::from_bytes("Content-Type", "application/json").ok();
            let mut response = Response::from_string(body.to_string()).with_status_code(status);
            if let Some(h) = json {
                response = response.with_header(h);
            }
            if let Err(e) = request.respond(response) {
                tracing::debug!(error = %e, "webhook reply not delivered");
            }
        }
    }
}

fn error(status: u16, message: impl Into<String>) -> (u16, Value) {
    (status, serde_json::json!({ "error": message.into() }))
}

fn authorised(request: &tiny_http::Request, token: &str) -> bool {
    request.headers().iter().any(|h| {
        let value = h.value.as_str();
        let given = if h.field.equiv("Authorization") {
            value.strip_prefix("Bearer ")
        } else if h.field.equiv("X-Cdktr-Token") {
            Some(value)
        } else {
            None
        };
        given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes()))
    })
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    diff == 0
}

fn handle(
    request: &mut tiny_http::Request,
    client: &Client,
    token: Option<&str>,
    runtime: &tokio::runtime::Handle,
) -> (u16, Value) {
    let Some(workflow) = request.url().strip_prefix("/trigger/").map(str::to_owned) else {
        return error(404, "not found: POST /trigger/<workflow>");
    };
    if *request.method() != Method::Post {
        return error(405, "use POST");
    }
    if let Some(token) = token {
        if !authorised(request, token) {
            return error(
                401,
                "missing or wrong token (Authorization: Bearer <token>)",
            );
        }
    }
    if workflow.is_empty() || workflow.contains('/') {
        return error(404, "not found: POST /trigger/<workflow>");
    }
    let mut body = String::new();
    if let Err(e) = request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_string(&mut body)
    {
        return error(400, format!("body is not UTF-8 text: {e}"));
    }
    if body.len() as u64 > MAX_BODY {
        return error(413, format!("body larger than {MAX_BODY} bytes"));
    }
    let params = match parse_params(&body) {
        Ok(p) => p,
        Err(e) => return error(400, e),
    };
    match runtime.block_on(client.trigger(&workflow, params, "event:webhook")) {
        Ok(run_id) => (
            202,
            serde_json::json!({ "run_id": run_id, "workflow": workflow }),
        ),
        Err(ClientError::Remote(e)) => match e.code {
            ErrorCode::NotFound => error(404, e.message),
            ErrorCode::Invalid | ErrorCode::Malformed => error(400, e.message),
            _ => error(503, e.message),
        },
        Err(e @ ClientError::Unreachable { .. }) => error(503, e.to_string()),
        Err(e) => error(502, e.to_string()),
    }
}

/// The body: empty, or a JSON object whose values are strings, numbers or booleans.
fn parse_params(body: &str) -> Result<BTreeMap<String, String>, String> {
    if body.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let value: Value = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("body must be a JSON object of parameters".into());
    };
    map.into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(n) => Ok((k, n.to_string())),
            Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(format!(
                "parameter `{k}`: expected a string, number or boolean, got {other}"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cret!", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(!same_secret(b"S3cret", b"s3cret"));
    }

    #[test]
    fn params_from_json() {
        let p = parse_params(r#"{"day": "mon", "n": 3, "dry": true}"#).unwrap();
        assert_eq!(p["day"], "mon");
        assert_eq!(p["n"], "3");
        assert_eq!(p["dry"], "true");
        assert!(parse_params("").unwrap().is_empty());
        assert!(parse_params("[1]").unwrap_err().contains("JSON object"));
        assert!(parse_params(r#"{"a": {"b": 1}}"#)
            .unwrap_err()
            .contains("parameter `a`"));
        assert!(parse_params("{").unwrap_err().contains("not JSON"));
    }
}
