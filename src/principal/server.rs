//! The API socket: one ROUTER serving every agent and control client over its own
//! long-lived connection. Requests are decoded here; anything undecodable is answered with a
//! typed error and the loop goes on.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeromq::{SocketRecv, SocketSend};

use super::core::{CoreHandle, CoreMsg};
use super::reload::ReloadHandle;
use super::scheduler::SchedulerHandle;
use crate::model::RunId;
use crate::protocol::agent::{AgentReply, Assignment};
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
pub struct ReplyTo {
    identity: Bytes,
    delimiters: Vec<Bytes>,
    pub id: u64,
}

/// A reply waiting to be written, with the runs it assigns (reported back if undeliverable).
type Outgoing = (ReplyTo, ResponseEnvelope, Vec<RunId>);

/// Sends replies from any task without blocking it.
#[derive(Clone)]
pub struct Replier {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Replier {
    pub fn send(&self, to: &ReplyTo, response: Response) {
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: to.id,
            response,
        };
        let _ = self.tx.send((to.clone(), envelope, Vec::new()));
    }

    /// Sends assignments; if the peer is gone, the runs come back on the undelivered channel.
    pub fn send_work(&self, to: &ReplyTo, assignments: Vec<Assignment>) {
        let runs = assignments.iter().map(|a| a.run_id.clone()).collect();
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: to.id,
            response: Response::Agent(AgentReply::Work { assignments }),
        };
        let _ = self.tx.send((to.clone(), envelope, runs));
    }

    pub fn error(&self, to: &ReplyTo, code: ErrorCode, message: impl Into<String>) {
        self.send(to, Response::Error(ErrorReply::new(code, message)));
    }
}

/// The receiving end of the replier: given to [`serve`], which owns the socket.
pub struct ReplyTask {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    undelivered: mpsc::UnboundedSender<Vec<RunId>>,
}

/// The replier, and the receiving end for [`serve`]. Assignments that cannot be delivered are
/// sent to `undelivered` so the coordinator can queue them again.
pub fn replier(undelivered: mpsc::UnboundedSender<Vec<RunId>>) -> (Replier, ReplyTask) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Replier { tx }, ReplyTask { rx, undelivered })
}

pub struct Context {
    pub core: CoreHandle,
    pub store: Store,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub scheduler: SchedulerHandle,
    pub reloader: ReloadHandle,
    pub replier: Replier,
    pub max_message_bytes: usize,
    /// In-flight requests and replies that wait for a commit: the socket stays open for
    /// their answers until they are done.
    pub pending: TaskTracker,
}

pub async fn serve(
    socket: zeromq::RouterSocket,
    mut replies: ReplyTask,
    ctx: Context,
    stop: CancellationToken,
) {
    let (mut send, mut recv) = socket.split();
    let writer_stop = CancellationToken::new();
    let writer = {
        let writer_stop = writer_stop.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    r = replies.rx.recv() => r,
                    _ = writer_stop.cancelled() => {
                        // Send what is already queued, then stop.
                        replies.rx.try_recv().ok()
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
                        let _ = replies.undelivered.send(runs);
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
            handle_frames(msg.into_vec(), &ctx)
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

fn handle_frames(mut frames: Vec<Bytes>, ctx: &Context) {
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
        ctx.replier.error(
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
            ctx.replier.send(&to, envelope.response);
            return;
        }
    };
    to.id = envelope.id;
    match envelope.request {
        Request::Agent(request) => ctx.core.send(CoreMsg::Agent { request, reply: to }),
        Request::Control(request) => {
            let services = super::control::Services {
                core: ctx.core.clone(),
                store: ctx.store.clone(),
                catalog: ctx.catalog.clone(),
                scheduler: ctx.scheduler.clone(),
                reloader: ctx.reloader.clone(),
            };
            let replier = ctx.replier.clone();
            ctx.pending.spawn(async move {
                let response = super::control::handle(request, &services).await;
                replier.send(&to, response);
            });
        }
    }
}
