//! Envelopes to bytes and back. Decoding never panics: every failure is a [`ProtocolError`]
//! that maps to an error reply.

use serde::Serialize;

use super::{ErrorCode, ErrorReply, RequestEnvelope, Response, ResponseEnvelope, VERSION};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    Oversize { size: usize, limit: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("unsupported protocol version {got} (this principal speaks version {VERSION})")]
    UnsupportedVersion { got: u64 },
    #[error("unknown message type: {0}")]
    UnknownType(String),
}

impl ProtocolError {
    pub fn to_reply(&self) -> ErrorReply {
        let code = match self {
            ProtocolError::Oversize { .. } => ErrorCode::Oversize,
            ProtocolError::Malformed(_) => ErrorCode::Malformed,
            ProtocolError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            ProtocolError::UnknownType(_) => ErrorCode::UnknownType,
        };
        ErrorReply::new(code, self.to_string())
    }
}

pub fn encode(value: &impl Serialize) -> Vec<u8> {
    // Serialising our own types (plain structs, enums, maps with string keys) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Decodes a request, checking size, then version, then shape. On failure also returns the
/// request id when it could be read, so the error reply can still be matched.
pub fn decode_request(bytes: &[u8], limit: usize) -> Result<RequestEnvelope, (u64, ProtocolError)> {
    if bytes.len() > limit {
        return Err((
            0,
            ProtocolError::Oversize {
                size: bytes.len(),
                limit,
            },
        ));
    }
    // The common case in one pass; anything else is parsed again, generically, to say
    // precisely what is wrong (and with which request id).
    if let Ok(envelope) = serde_json::from_slice::<RequestEnvelope>(bytes) {
        if envelope.v == VERSION {
            return Ok(envelope);
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| (0, ProtocolError::Malformed(format!("not JSON: {e}"))))?;
    let id = value.get("id").and_then(|v| v.as_u64()).unwrap_or(0);
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(got) => return Err((id, ProtocolError::UnsupportedVersion { got })),
        None => {
            return Err((
                id,
                ProtocolError::Malformed("missing protocol version field `v`".into()),
            ))
        }
    }
    serde_json::from_value(value).map_err(|e| (id, classify(e)))
}

pub fn decode_response(bytes: &[u8]) -> Result<ResponseEnvelope, ProtocolError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ProtocolError::Malformed(format!("not JSON: {e}")))?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(VERSION) => serde_json::from_value(value).map_err(classify),
        Some(got) => Err(ProtocolError::UnsupportedVersion { got }),
        None => Err(ProtocolError::Malformed(
            "missing protocol version field `v`".into(),
        )),
    }
}

fn classify(e: serde_json::Error) -> ProtocolError {
    let text = e.to_string();
    if text.starts_with("unknown variant") {
        ProtocolError::UnknownType(text)
    } else {
        ProtocolError::Malformed(text)
    }
}

pub fn error_response(id: u64, error: ErrorReply) -> ResponseEnvelope {
    ResponseEnvelope {
        v: VERSION,
        id,
        response: Response::Error(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::ControlRequest;
    use crate::protocol::Request;

    fn trigger() -> RequestEnvelope {
        RequestEnvelope {
            v: VERSION,
            id: 42,
            request: Request::Control(ControlRequest::Status),
        }
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&trigger());
        assert_eq!(decode_request(&bytes, 1 << 20).unwrap(), trigger());
    }

    #[test]
    fn garbage_is_malformed() {
        let (id, e) = decode_request(b"\xff\x00garbage", 1 << 20).unwrap_err();
        assert_eq!(id, 0);
        assert!(matches!(e, ProtocolError::Malformed(_)));
        let (_, e) = decode_request(br#"{"id":1}"#, 1 << 20).unwrap_err();
        assert!(matches!(e, ProtocolError::Malformed(_)));
        let (id, e) = decode_request(
            br#"{"v":1,"id":9,"request":{"family":"control","message":{"type":"status","x":[}}"#,
            1 << 20,
        )
        .unwrap_err();
        assert_eq!(id, 0);
        assert!(matches!(e, ProtocolError::Malformed(_)));
    }

    #[test]
    fn wrong_version_keeps_the_id() {
        let (id, e) = decode_request(br#"{"v":99,"id":7,"request":{}}"#, 1 << 20).unwrap_err();
        assert_eq!(id, 7);
        assert_eq!(e, ProtocolError::UnsupportedVersion { got: 99 });
        assert_eq!(e.to_reply().code, ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn unknown_type_is_named() {
        let (id, e) = decode_request(
            br#"{"v":1,"id":3,"request":{"family":"control","message":{"type":"launch_rockets"}}}"#,
            1 << 20,
        )
        .unwrap_err();
        assert_eq!(id, 3);
        assert!(
            matches!(&e, ProtocolError::UnknownType(t) if t.contains("launch_rockets")),
            "{e}"
        );
    }

    #[test]
    fn oversize_is_refused_before_decoding() {
        let bytes = vec![b' '; 2048];
        let (_, e) = decode_request(&bytes, 1024).unwrap_err();
        assert_eq!(
            e,
            ProtocolError::Oversize {
                size: 2048,
                limit: 1024
            }
        );
    }

    #[test]
    fn wrong_field_type_is_malformed_with_the_field() {
        let (_, e) = decode_request(
            br#"{"v":1,"id":3,"request":{"family":"control","message":{"type":"trigger","workflow":5}}}"#,
            1 << 20,
        )
        .unwrap_err();
        assert!(
            matches!(&e, ProtocolError::Malformed(m) if m.contains("invalid type")),
            "{e}"
        );
    }
}
