//! `cdktr listen webhook`: `POST /trigger/<workflow>` with a JSON object of parameters queues a
//! run and answers with its id. Requests must carry the shared token
//! (`Authorization: Bearer <token>` or `X-Cdktr-Token: <token>`).
//!
//! Built on hyper with every input bounded: the method, path and token are checked before any
//! body byte is read; a declared or actual body over 1 MiB is refused without reading (or
//! buffering) the rest; headers must arrive within 10 s and a body within 10 s; a connection
//! lives at most 60 s; at most 64 connections are served at once (more are closed at once).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::protocol::ErrorCode;
use crate::runtime::http;
use crate::transport::{Client, ClientError};

/// Larger request bodies are refused.
const MAX_BODY: usize = 1024 * 1024;
/// Connections served at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its headers, then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

pub struct Webhook {
    listener: TcpListener,
}

impl Webhook {
    /// Binds the listener (`127.0.0.1:0` picks a free port; see [`Webhook::address`]).
    pub async fn bind(address: &str) -> anyhow::Result<Webhook> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        Ok(Webhook { listener })
    }

    pub fn address(&self) -> String {
        self.listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// Serves until the process ends. `token`: the shared secret, or None for no auth.
    pub async fn serve(self, client: Client, token: Option<String>) {
        let token: Option<Arc<str>> = token.map(Into::into);
        let never = tokio_util::sync::CancellationToken::new();
        http::serve(
            self.listener,
            LIMITS,
            "webhook",
            never,
            handler(client, token),
        )
        .await;
    }
}

/// Every bound above.
const LIMITS: http::Limits = http::Limits {
    max_connections: MAX_CONNECTIONS,
    read_timeout: READ_TIMEOUT,
    lifetime: CONNECTION_LIFETIME,
};

/// What answers each request.
fn handler(
    client: Client,
    token: Option<Arc<str>>,
) -> impl Fn(Request<Incoming>) -> http::Reply + Clone + Send + Sync + 'static {
    move |request| {
        let (client, token) = (client.clone(), token.clone());
        Box::pin(async move { handle(request, &client, token.as_deref()).await })
    }
}

/// Serves one HTTP/1 connection on `io` (a TCP stream, or any byte stream in the fuzz
/// harness) with every bound above; why it ended, when not cleanly.
pub async fn serve_connection<I>(
    io: I,
    client: Client,
    token: Option<Arc<str>>,
) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    http::serve_connection(io, LIMITS, handler(client, token)).await
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if status >= 400 {
        // An error ends the connection: nothing left unread is ever drained.
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    response
}

fn error(status: u16, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, serde_json::json!({ "error": message.into() }))
}

fn authorised(request: &Request<Incoming>, token: &str) -> bool {
    let headers = request.headers();
    let bearer = headers
        .get_all(hyper::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("Bearer "));
    let plain = headers
        .get_all("x-cdktr-token")
        .iter()
        .filter_map(|v| v.to_str().ok());
    bearer
        .chain(plain)
        .any(|given| same_secret(given.as_bytes(), token.as_bytes()))
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    diff == 0
}

async fn handle(
    request: Request<Incoming>,
    client: &Client,
    token: Option<&str>,
) -> Response<Full<Bytes>> {
    let Some(workflow) = request
        .uri()
        .path()
        .strip_prefix("/trigger/")
        .map(str::to_owned)
    else {
        return error(404, "not found: POST /trigger/<workflow>");
    };
    if request.method() != Method::POST {
        return error(405, "use POST");
    }
    if let Some(token) = token {
        if !authorised(&request, token) {
            return error(
                401,
                "missing or wrong token (Authorization: Bearer <token>)",
            );
        }
    }
    if workflow.is_empty() || workflow.contains('/') {
        return error(404, "not found: POST /trigger/<workflow>");
    }
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return error(413, format!("body larger than {MAX_BODY} bytes"));
    }
    let body = Limited::new(request.into_body(), MAX_BODY).collect();
    let body = match tokio::time::timeout(READ_TIMEOUT, body).await {
        Err(_) => return error(408, "the body did not arrive in time"),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return error(413, format!("body larger than {MAX_BODY} bytes"))
        }
        Ok(Err(e)) => return error(400, format!("cannot read the body: {e}")),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let Ok(body) = std::str::from_utf8(&body) else {
        return error(400, "body is not UTF-8 text");
    };
    let params = match parse_params(body) {
        Ok(p) => p,
        Err(e) => return error(400, e),
    };
    match client.trigger(&workflow, params, "event:webhook").await {
        Ok(run_id) => reply(
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
