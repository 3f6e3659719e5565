//! The ZAP handler: libzmq asks it, for every CURVE handshake on the principal's sockets,
//! whether the client's public key may connect. It answers from the keys file (re-read when
//! it changes) and names the client, so each message the server receives carries who sent it.
//! Refusals are logged, at most once a minute per key, so a client retrying in a loop cannot
//! flood the log.

use std::sync::Arc;

use super::{AuthError, KeysFile, LogThrottle};
use crate::model::Role;
use crate::transport::socket::context;

/// The ZAP domain of the API socket: any listed client.
pub const API_DOMAIN: &str = "cdktr";
/// The ZAP domain of the live log stream: viewers and operators only.
pub const STREAM_DOMAIN: &str = "cdktr-stream";

const ZAP_ENDPOINT: &str = "inproc://zeromq.zap.01";

/// Starts the handler (once per process, before any CURVE socket accepts connections).
pub fn start(keys: Arc<KeysFile>) -> Result<(), AuthError> {
    let socket = context().socket(zmq::REP)?;
    socket.bind(ZAP_ENDPOINT)?;
    std::thread::Builder::new()
        .name("cdktr-zap".into())
        .spawn(move || serve(&socket, &keys))
        .map_err(|source| AuthError::Io {
            path: ZAP_ENDPOINT.into(),
            source,
        })?;
    Ok(())
}

fn serve(socket: &zmq::Socket, keys: &KeysFile) {
    let logged = LogThrottle::default();
    loop {
        let request = match socket.recv_multipart(0) {
            Ok(r) => r,
            Err(zmq::Error::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "authentication handler stopped");
                return;
            }
        };
        let reply = answer(&request, keys, &logged);
        if let Err(e) = socket.send_multipart(reply, 0) {
            tracing::warn!(error = %e, "authentication reply not sent");
        }
    }
}

/// The ZAP reply (RFC 27) to one request (public for the fuzz harness).
pub fn answer(request: &[Vec<u8>], keys: &KeysFile, logged: &LogThrottle) -> Vec<Vec<u8>> {
    let version = request.first().cloned().unwrap_or_else(|| b"1.0".to_vec());
    let id = request.get(1).cloned().unwrap_or_default();
    let reply = |code: &str, text: &str, user: &str| {
        vec![
            version.clone(),
            id.clone(),
            code.as_bytes().to_vec(),
            text.as_bytes().to_vec(),
            user.as_bytes().to_vec(),
            Vec::new(),
        ]
    };
    let field = |i: usize| {
        request
            .get(i)
            .map(|f| String::from_utf8_lossy(f).into_owned())
    };
    let (Some(domain), Some(address), Some(mechanism)) = (field(2), field(3), field(5)) else {
        return reply("500", "malformed request", "");
    };
    let key = request
        .get(6)
        .filter(|_| mechanism == "CURVE")
        .and_then(|k| zmq::z85_encode(k).ok());
    let Some(key) = key else {
        return refuse(&reply, logged, &address, &address, "no CURVE key");
    };
    let current = keys.current();
    match current.by_public(&key) {
        Some(entry)
            if domain == STREAM_DOMAIN && !matches!(entry.role, Role::Viewer | Role::Operator) =>
        {
            let why = format!(
                "`{}` ({}) may not read the live stream",
                entry.name, entry.role
            );
            refuse(&reply, logged, &key, &address, &why)
        }
        Some(entry) => reply("200", "OK", &entry.name),
        None => refuse(&reply, logged, &key, &address, "unknown or revoked key"),
    }
}

fn refuse(
    reply: &impl Fn(&str, &str, &str) -> Vec<Vec<u8>>,
    logged: &LogThrottle,
    who: &str,
    address: &str,
    why: &str,
) -> Vec<Vec<u8>> {
    if logged.due(who) {
        tracing::warn!(key = who, %address, reason = why, "connection refused");
    }
    reply("400", why, "")
}
