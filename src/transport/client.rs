//! The typed request/reply client used by agents, the CLI and the TUI.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::socket::{self, context, Outbox, Received};
use crate::auth::Credential;

use crate::protocol::control::{ControlReply, ControlRequest};
use crate::protocol::{
    self, ErrorReply, ProtocolError, Request, RequestEnvelope, Response, ResponseEnvelope,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach principal at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("principal refused the request: {0}")]
    Remote(ErrorReply),
    #[error("principal sent a reply this client cannot read: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("principal sent an unexpected reply: {0}")]
    Unexpected(String),
}

type ReplySlot = oneshot::Sender<Result<ResponseEnvelope, String>>;

enum Command {
    Send {
        frame: Bytes,
        id: u64,
        reply: ReplySlot,
    },
    /// The connection is presumed dead: drop the socket and connect again.
    Reset,
}

/// A cloneable handle to one connection. Dropping every handle closes the socket.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    endpoint: Arc<str>,
    next_id: Arc<AtomicU64>,
    timeout: Duration,
    credential: Option<Arc<Credential>>,
}

impl Client {
    /// Starts the connection task. Connecting happens in the background; requests made before
    /// the principal is up wait (up to their timeout) for it.
    pub fn connect(endpoint: &str, timeout: Duration) -> Client {
        Client::connect_as(endpoint, timeout, None)
    }

    /// The same, authenticating with `credential` (CURVE) when given: the principal must hold
    /// the secret key of the public key the credential names, or no connection is made.
    /// A local control socket (`ipc://`) needs no credential: its file permissions are the
    /// credential, so one given is not used there.
    pub fn connect_as(endpoint: &str, timeout: Duration, credential: Option<Credential>) -> Client {
        let (tx, rx) = mpsc::channel(1024);
        let credential = credential
            .filter(|_| !endpoint.starts_with("ipc://"))
            .map(Arc::new);
        tokio::spawn(io_task(endpoint.to_owned(), rx, credential.clone()));
        Client {
            tx,
            endpoint: endpoint.into(),
            next_id: Arc::new(AtomicU64::new(1)),
            timeout,
            credential,
        }
    }

    /// A client of the configured principal, with the configured credential (if any).
    pub fn from_config(
        config: &crate::config::ClientConfig,
    ) -> Result<Client, crate::auth::AuthError> {
        Ok(Client::connect_as(
            &config.principal,
            config.timeout,
            Credential::optional(&config.credential)?,
        ))
    }

    /// The credential this client connects with, if any (the live stream uses it too).
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_deref()
    }

    /// How long a request waits for its reply unless told otherwise.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `request` and waits up to the client's timeout for the reply.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        self.request_within(request, self.timeout).await
    }

    /// Sends `request` and waits up to `wait` (for long polls).
    pub async fn request_within(
        &self,
        request: Request,
        wait: Duration,
    ) -> Result<Response, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = Bytes::from(protocol::encode(&RequestEnvelope {
            v: protocol::VERSION,
            id,
            request,
        }));
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Send { frame, id, reply })
            .await
            .map_err(|_| self.unreachable("connection task stopped"))?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(Ok(envelope))) => match envelope.response {
                Response::Error(e) => Err(ClientError::Remote(e)),
                other => Ok(other),
            },
            Ok(Ok(Err(reason))) => Err(self.unreachable(&reason)),
            Ok(Err(_)) => Err(self.unreachable("connection reset")),
            Err(_) => {
                let _ = self.tx.try_send(Command::Reset);
                Err(self.unreachable(&format!(
                    "no reply within {}",
                    humantime::format_duration(wait)
                )))
            }
        }
    }

    /// Sends a control request and returns the control reply (any other reply is unexpected).
    pub async fn control(&self, request: ControlRequest) -> Result<ControlReply, ClientError> {
        self.control_within(request, self.timeout).await
    }

    /// As [`Client::control`], waiting up to `wait` for the reply.
    pub async fn control_within(
        &self,
        request: ControlRequest,
        wait: Duration,
    ) -> Result<ControlReply, ClientError> {
        match self.request_within(Request::Control(request), wait).await? {
            Response::Control(reply) => Ok(reply),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    fn unreachable(&self, reason: &str) -> ClientError {
        ClientError::Unreachable {
            endpoint: self.endpoint.to_string(),
            reason: reason.to_owned(),
        }
    }
}

/// Owns the connection: sends queued requests, routes replies to their waiters by id, and
/// replaces the socket when told the connection is dead (libzmq reconnects by itself, but a
/// request queued for a peer that never answers must not be sent late: a new socket drops it).
async fn io_task(
    endpoint: String,
    mut rx: mpsc::Receiver<Command>,
    credential: Option<Arc<Credential>>,
) {
    loop {
        let (connection, mut replies) = match Connection::open(&endpoint, credential.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%endpoint, error = %e, "cannot open a connection");
                // Fail what arrives until the endpoint can be used; no spinning meanwhile.
                match rx.recv().await {
                    None => return,
                    Some(Command::Send { reply, .. }) => {
                        let _ = reply.send(Err(format!("cannot connect: {e}")));
                    }
                    Some(Command::Reset) => {}
                }
                continue;
            }
        };
        let mut pending: HashMap<u64, ReplySlot> = HashMap::new();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Reset) => break,
                    Some(Command::Send { frame, id, reply }) => {
                        pending.retain(|_, slot| !slot.is_closed());
                        if connection.outbox.send(frame.to_vec()) {
                            pending.insert(id, reply);
                        } else {
                            let _ = reply.send(Err("connection closed".into()));
                            break;
                        }
                    }
                },
                msg = replies.recv() => match msg {
                    Some(Received { mut frames, .. }) => {
                        let Some(frame) = frames.pop() else { continue };
                        match protocol::decode_response(&frame) {
                            Ok(envelope) => {
                                if let Some(slot) = pending.remove(&envelope.id) {
                                    let _ = slot.send(Ok(envelope));
                                }
                            }
                            Err(e) => tracing::warn!(%endpoint, error = %e, "undecodable reply"),
                        }
                    }
                    None => break,
                },
            }
        }
        for (_, slot) in pending.drain() {
            let _ = slot.send(Err("connection reset".into()));
        }
    }
}

/// One DEALER socket on its own thread.
struct Connection {
    outbox: Outbox<Vec<u8>>,
}

impl Connection {
    fn open(
        endpoint: &str,
        credential: Option<&Credential>,
    ) -> Result<(Connection, mpsc::Receiver<Received>), String> {
        let socket = context().socket(zmq::DEALER).map_err(|e| e.to_string())?;
        // A closed connection drops what it had queued at once.
        socket.set_linger(0).map_err(|e| e.to_string())?;
        if let Some(c) = credential {
            c.apply(&socket).map_err(|e| format!("credential: {e}"))?;
        }
        socket.connect(endpoint).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(socket::INCOMING);
        let (outbox, _thread) = socket::spawn("cdktr-client", socket, tx, |socket, frame| {
            if let Err(e) = socket.send(frame, zmq::DONTWAIT) {
                tracing::debug!(error = %e, "request not sent");
            }
        })
        .map_err(|e| e.to_string())?;
        Ok((Connection { outbox }, rx))
    }
}
