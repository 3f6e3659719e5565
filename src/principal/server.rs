//! The API socket: one ROUTER serving every agent and control client over its own
//! long-lived connection. Requests are decoded here; anything undecodable is answered with a
//! typed error and the loop goes on.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeromq::{SocketRecv, SocketSend};

use super::coordinator::{CoordinatorHandle, Msg};
use super::reload::ReloadHandle;
use super::scheduler::SchedulerHandle;
use crate::model::RunId;
use crate::protocol::agent::AgentReply;
use crate::protocol::codec::error_response;
use crate::protocol::{self, ErrorCode, ErrorReply, Request, Response, ResponseEnvelope, VERSION};
use crate::store::Store;
use crate::transport::message;
use crate::workflow::Catalog;

/// How long shutdown waits for requests in flight to be answered.
const PENDING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a reply goes: the peer's routing identity, any envelope frames it sent (a REQ
/// socket's empty delimiter), and the request id to echo.
#[derive(Clone, Debug)]
struct ReplyTo {
    identity: Bytes,
    delimiters: Vec<Bytes>,
    id: u64,
}

/// A reply waiting to be written, with the runs it assigns (reported back if undeliverable).
type Outgoing = (ReplyTo, ResponseEnvelope, Vec<RunId>);

/// Sends replies from any task without blocking it.
#[derive(Clone)]
struct Replier {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Replier {
    fn send(&self, to: &ReplyTo, response: Response) {
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: to.id,
            response,
        };
        let _ = self.tx.send((to.clone(), envelope, Vec::new()));
    }

    /// Sends an agent's reply; the runs a `Work` reply assigns go back to the coordinator if
    /// the peer is gone.
    fn send_agent(&self, to: &ReplyTo, reply: AgentReply) {
        let runs = match &reply {
            AgentReply::Work { assignments } => {
                assignments.iter().map(|a| a.run_id.clone()).collect()
            }
            _ => Vec::new(),
        };
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: to.id,
            response: Response::Agent(reply),
        };
        let _ = self.tx.send((to.clone(), envelope, runs));
    }

    fn error(&self, to: &ReplyTo, code: ErrorCode, message: impl Into<String>) {
        self.send(to, Response::Error(ErrorReply::new(code, message)));
    }
}

pub struct Context {
    pub core: CoordinatorHandle,
    pub store: Store,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub scheduler: SchedulerHandle,
    pub reloader: ReloadHandle,
    pub max_message_bytes: usize,
    /// In-flight requests (and the coordinator's replies that wait for a commit): after a
    /// shutdown the socket stays open for their answers until they are done.
    pub pending: TaskTracker,
}

pub async fn serve(socket: zeromq::RouterSocket, ctx: Context, stop: CancellationToken) {
    let (mut send, mut recv) = socket.split();
    let (tx, mut replies) = mpsc::unbounded_channel::<Outgoing>();
    let replier = Replier { tx };
    let core = ctx.core.clone();
    let writer_stop = CancellationToken::new();
    let writer = {
        let writer_stop = writer_stop.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    r = replies.recv() => r,
                    _ = writer_stop.cancelled() => {
                        // Send what is already queued, then stop.
                        replies.try_recv().ok()
                    }
                };
                let Some((to, envelope, runs)) = next else {
                    return;
                };
                let mut frames = vec![to.identity];
                frames.extend(to.delimiters);
                frames.push(Bytes::from(protocol::encode(&envelope)));
                if let Err(e) = send.send(message(frames)).await {
                    tracing::debug!(error = %e, "reply not delivered (peer gone)");
                    if !runs.is_empty() {
                        core.send(Msg::Undelivered(runs));
                    }
                }
            }
        })
    };
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            m = recv.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed");
                continue;
            }
        };
        crate::runtime::contained("server", "a request", || {
            handle_frames(msg.into_vec(), &ctx, &replier)
        });
    }
    // No new requests; answer the ones in flight, then close.
    ctx.pending.close();
    if tokio::time::timeout(PENDING_GRACE, ctx.pending.wait())
        .await
        .is_err()
    {
        tracing::warn!("some requests were not answered within {PENDING_GRACE:?} of shutdown");
    }
    writer_stop.cancel();
    let _ = writer.await;
}

fn handle_frames(mut frames: Vec<Bytes>, ctx: &Context, replier: &Replier) {
    if frames.len() < 2 {
        return; // No identity or no payload: nothing we could even answer.
    }
    let identity = frames.remove(0);
    let payload = frames.pop().unwrap_or_default();
    let mut to = ReplyTo {
        identity,
        delimiters: Vec::new(),
        id: 0,
    };
    if frames.iter().any(|f| !f.is_empty()) {
        tracing::warn!(frames = frames.len() + 1, "request with extra frames");
        replier.error(
            &to,
            ErrorCode::Malformed,
            "malformed message: expected one JSON frame (after an optional empty delimiter)",
        );
        return;
    }
    to.delimiters = frames;
    let envelope = match protocol::decode_request(&payload, ctx.max_message_bytes) {
        Ok(e) => e,
        Err((id, e)) => {
            tracing::warn!(error = %e, "bad request");
            to.id = id;
            let envelope = error_response(id, e.to_reply());
            replier.send(&to, envelope.response);
            return;
        }
    };
    to.id = envelope.id;
    let replier = replier.clone();
    match envelope.request {
        Request::Agent(request) => {
            let answer = ctx.core.agent(request);
            ctx.pending.spawn(async move {
                match answer.await {
                    Ok(reply) => replier.send_agent(&to, reply),
                    Err(e) => replier.send(&to, Response::Error(e)),
                }
            });
        }
        Request::Control(request) => {
            let services = super::control::Services {
                core: ctx.core.clone(),
                store: ctx.store.clone(),
                catalog: ctx.catalog.clone(),
                scheduler: ctx.scheduler.clone(),
                reloader: ctx.reloader.clone(),
            };
            ctx.pending.spawn(async move {
                let response = super::control::handle(request, &services).await;
                replier.send(&to, response);
            });
        }
    }
}
