//! The wire protocol between agents, control clients and the principal.
//!
//! Every message is one JSON document in one ZeroMQ frame, inside an envelope carrying the
//! protocol version and a request id. JSON because every language (a shell script with pyzmq,
//! a webhook relay) can speak it without a schema compiler, it is readable in a packet capture,
//! and our message rates (thousands per second at most) do not need a binary encoding.
//!
//! Families: [`agent`] (agent <-> principal), [`control`] (CLI, TUI, listeners <-> principal),
//! [`logs`] (the live log stream). [`codec`] turns envelopes into frames and back, and turns
//! anything it cannot decode into a typed [`ProtocolError`] the server answers with.

pub mod agent;
pub mod codec;
pub mod control;
pub mod logs;
pub mod query;
pub mod views;

use serde::{Deserialize, Serialize};

pub use codec::{decode_request, decode_response, encode, ProtocolError};

/// The protocol version this build speaks. A request with another version gets an
/// `unsupported_version` error reply.
pub const VERSION: u16 = 1;

/// A request: which family it belongs to and the message itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", content = "message", rename_all = "snake_case")]
pub enum Request {
    Agent(agent::AgentRequest),
    Control(control::ControlRequest),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Protocol version ([`VERSION`]).
    pub v: u16,
    /// Chosen by the client; echoed in the reply so replies can be matched to requests.
    pub id: u64,
    pub request: Request,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    pub v: u16,
    /// The id of the request this answers (0 when the request's id could not be read).
    pub id: u64,
    pub response: Response,
}

/// A reply: the family's answer, or an error (`{"family": "error", "reply": {"code": ...}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", content = "reply", rename_all = "snake_case")]
pub enum Response {
    Agent(agent::AgentReply),
    Control(control::ControlReply),
    Error(ErrorReply),
}

/// What went wrong, as a stable code and a human message naming the offending field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an envelope, or a field of the wrong type.
    Malformed,
    /// A `type` or `family` this principal does not know.
    UnknownType,
    UnsupportedVersion,
    /// Larger than `principal.max_message_bytes`.
    Oversize,
    /// Well-formed but refers to something that does not exist (workflow, run, agent).
    NotFound,
    /// Well-formed but not acceptable (bad parameter, wrong state).
    Invalid,
    /// The principal could not do it right now (store unavailable, shutting down).
    Unavailable,
    /// The run queue holds `principal.max_queued_runs` runs: try again later.
    QueueFull,
    /// The sender's credential does not allow this request (or was revoked).
    Forbidden,
    Internal,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorReply {
            code,
            message: message.into(),
        }
    }

    /// An `invalid` error naming the request field at fault.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        ErrorReply::new(ErrorCode::Invalid, format!("field `{field}`: {problem}"))
    }
}

/// Largest number a counter or cursor from the network may carry: the store keeps them as
/// signed 64-bit integers, and a larger one must be refused, never wrapped.
pub const MAX_STORED_INT: u64 = i64::MAX as u64;

/// `value` if the store can hold it, else an `invalid` error naming `field`.
/// The longest `grep` pattern a request may carry.
pub const MAX_PATTERN_BYTES: usize = 1000;

/// Checks a `grep` pattern before the store runs it (DuckDB's RE2 and Rust's `regex` read the
/// same syntax, both in linear time): its length, and that it compiles within a size limit.
pub fn checked_pattern(pattern: String) -> Result<String, ErrorReply> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(ErrorReply::invalid(
            "grep",
            format!(
                "the pattern is {} bytes; at most {MAX_PATTERN_BYTES}",
                pattern.len()
            ),
        ));
    }
    regex::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ErrorReply::invalid("grep", format!("not a regular expression: {e}")))?;
    Ok(pattern)
}

pub fn storable(field: &str, value: u64) -> Result<u64, ErrorReply> {
    if value <= MAX_STORED_INT {
        Ok(value)
    } else {
        Err(ErrorReply::invalid(
            field,
            format!("{value} is larger than {MAX_STORED_INT}"),
        ))
    }
}

#[cfg(test)]
mod tests;

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        write!(f, "{} ({code})", self.message)
    }
}
