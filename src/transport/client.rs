//! The typed request/reply client used by agents, the CLI and the TUI.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use zeromq::{Socket, SocketOptions, SocketRecv, SocketSend};

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
}

impl Client {
    /// Starts the connection task. Connecting happens in the background; requests made before
    /// the principal is up wait (up to their timeout) for it.
    pub fn connect(endpoint: &str, timeout: Duration) -> Client {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(io_task(endpoint.to_owned(), rx, timeout));
        Client {
            tx,
            endpoint: endpoint.into(),
            next_id: Arc::new(AtomicU64::new(1)),
            timeout,
        }
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
        match self.request(Request::Control(request)).await? {
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

/// Owns the socket: sends queued requests, routes replies to their waiters by id, and
/// reconnects when told the connection is dead or the socket fails.
async fn io_task(endpoint: String, mut rx: mpsc::Receiver<Command>, timeout: Duration) {
    // Requests made while (re)connecting wait here; their callers time out on their own.
    let mut queued: Vec<(Bytes, u64, ReplySlot)> = Vec::new();
    loop {
        let mut options = SocketOptions::default();
        options.connect_timeout(timeout.max(Duration::from_secs(1)));
        let mut socket = zeromq::DealerSocket::with_options(options);
        let connected = {
            let connect = socket.connect(&endpoint);
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    r = &mut connect => break r,
                    cmd = rx.recv() => match cmd {
                        None => return,
                        Some(Command::Send { frame, id, reply }) => queued.push((frame, id, reply)),
                        Some(Command::Reset) => {}
                    },
                }
            }
        };
        if let Err(e) = connected {
            tracing::debug!(%endpoint, error = %e, "connect failed");
            for (_, _, reply) in queued.drain(..) {
                let _ = reply.send(Err(format!("connect failed: {e}")));
            }
            // Commands wait in the channel meanwhile; this only keeps a fast failure from spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (mut send, mut recv) = socket.split();
        let mut pending: HashMap<u64, ReplySlot> = HashMap::new();
        let mut alive = true;
        for (frame, id, reply) in queued.drain(..) {
            if reply.is_closed() {
                continue;
            }
            if alive {
                alive = forward(&mut send, &mut pending, frame, id, reply).await;
            } else {
                let _ = reply.send(Err("connection reset".into()));
            }
        }
        while alive {
            alive = tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Reset) => false,
                    Some(Command::Send { frame, id, reply }) => {
                        forward(&mut send, &mut pending, frame, id, reply).await
                    }
                },
                msg = recv.recv() => match msg {
                    Ok(msg) => {
                        if let Some(frame) = msg.into_vec().pop() {
                            match protocol::decode_response(&frame) {
                                Ok(envelope) => {
                                    if let Some(slot) = pending.remove(&envelope.id) {
                                        let _ = slot.send(Ok(envelope));
                                    }
                                }
                                Err(e) => tracing::warn!(%endpoint, error = %e, "undecodable reply"),
                            }
                        }
                        true
                    }
                    Err(e) => {
                        tracing::debug!(%endpoint, error = %e, "receive failed");
                        false
                    }
                },
            };
        }
        for (_, slot) in pending.drain() {
            let _ = slot.send(Err("connection reset".into()));
        }
    }
}

/// Sends one request; false when the socket failed (the connection must be rebuilt).
async fn forward(
    send: &mut zeromq::DealerSendHalf,
    pending: &mut HashMap<u64, ReplySlot>,
    frame: Bytes,
    id: u64,
    reply: ReplySlot,
) -> bool {
    match send.send(zeromq::ZmqMessage::from(frame)).await {
        Ok(()) => {
            pending.retain(|_, slot| !slot.is_closed());
            pending.insert(id, reply);
            true
        }
        Err(e) => {
            let _ = reply.send(Err(format!("send failed: {e}")));
            false
        }
    }
}
