//! The API socket: one ROUTER serving every agent and control client over its own
//! long-lived connection. Requests are decoded here; anything undecodable is answered with a
//! typed error and the loop goes on.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access::{Origin, Sender};
use super::coordinator::{CoordinatorHandle, Msg};
use super::reload::ReloadHandle;
use super::scheduler::SchedulerHandle;
use crate::model::RunId;
use crate::protocol::agent::AgentReply;
use crate::protocol::codec::error_response;
use crate::protocol::control::{ControlReply, ControlRequest};
use crate::protocol::{self, ErrorCode, ErrorReply, Request, Response, ResponseEnvelope, VERSION};
use crate::store::Store;
use crate::transport::socket::{self, Outbox};
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
    outbox: Outbox<Outgoing>,
}

impl Replier {
    fn send(&self, to: &ReplyTo, response: Response) {
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: to.id,
            response,
        };
        self.outbox.send((to.clone(), envelope, Vec::new()));
    }

    /// Sends an agent's reply; the runs a `Work` reply assigns go back to the coordinator if
    /// the peer is gone.
    fn send_agent(&self, to: &ReplyTo, reply: AgentReply) {
        let runs = match &reply {
            AgentReply::Work { assignments, .. } => {
                assignments.iter().map(|a| a.run_id.clone()).collect()
            }
            _ => Vec::new(),
        };
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: to.id,
            response: Response::Agent(reply),
        };
        self.outbox.send((to.clone(), envelope, runs));
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
    /// `[retention]`, for `cdktr gc`.
    pub retention: crate::store::retention::Policy,
    /// `cdktr query`'s row and time limits.
    pub query_limits: crate::store::sql::Limits,
    pub max_message_bytes: usize,
    /// Who may send what (everyone, when authentication is off).
    pub access: super::access::Access,
    /// Places for control requests in flight (see `slots`).
    pub control_slots: Arc<super::slots::ControlSlots>,
    /// In-flight requests (and the coordinator's replies that wait for a commit): after a
    /// shutdown the socket stays open for their answers until they are done.
    pub pending: TaskTracker,
}

/// The most bytes libzmq accepts in one message before it drops the connection, checked
/// before anything is allocated: `max_message_bytes` times four, at least 1 MiB. Messages
/// between the two limits are read and answered with a typed `oversize` error.
fn hard_limit(max_message_bytes: usize) -> i64 {
    i64::try_from(max_message_bytes.saturating_mul(4).max(1 << 20)).unwrap_or(i64::MAX)
}

/// Configures the ROUTER: sends to a peer that is gone fail (so undeliverable assignments
/// come back), a peer that does not read its replies loses them rather than blocking anyone,
/// and nothing larger than [`hard_limit`] is ever buffered.
pub fn configure(socket: &zmq::Socket, max_message_bytes: usize) -> zmq::Result<()> {
    socket.set_router_mandatory(true)?;
    socket.set_maxmsgsize(hard_limit(max_message_bytes))?;
    socket.set_sndhwm(10_000)?;
    socket.set_linger(1_000)
}

/// Serves requests on `socket`, which [`configure`] set up before it was bound.
pub async fn serve(
    socket: zmq::Socket,
    ctx: Arc<Context>,
    origin: Origin,
    stop: CancellationToken,
) {
    let core = ctx.core.clone();
    let (tx, mut requests) = mpsc::channel::<socket::Received>(socket::INCOMING);
    let name = match origin {
        Origin::Tcp => "cdktr-api",
        Origin::Local => "cdktr-control",
    };
    let spawned = socket::spawn(name, socket, tx, move |socket, outgoing: Outgoing| {
        let (to, envelope, runs) = outgoing;
        let mut frames = vec![to.identity.to_vec()];
        frames.extend(to.delimiters.iter().map(|d| d.to_vec()));
        frames.push(protocol::encode(&envelope));
        if let Err(e) = socket.send_multipart(frames, zmq::DONTWAIT) {
            // EHOSTUNREACH: the peer is gone; EAGAIN: it does not read what it is sent.
            tracing::debug!(error = %e, "reply not delivered");
            if !runs.is_empty() {
                core.send(Msg::Undelivered(runs));
            }
        }
    });
    let (outbox, thread) = match spawned {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the API socket's thread");
            return;
        }
    };
    let replier = Replier { outbox };
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            m = requests.recv() => match m {
                Some(received) => received,
                None => break,
            },
        };
        let frames = received.frames.into_iter().map(Bytes::from).collect();
        let sender = Sender {
            origin,
            user: received.user,
            peer: received.peer,
        };
        crate::runtime::contained("server", "a request", || {
            handle_frames(frames, &sender, &ctx, &replier)
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
    // The thread sends what is queued, then closes the socket (a request still running past
    // the grace loses its answer rather than holding up the shutdown).
    replier.outbox.close();
    drop(requests);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
}

fn handle_frames(mut frames: Vec<Bytes>, sender: &Sender, ctx: &Context, replier: &Replier) {
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
    let caller = match ctx.access.check(sender, &envelope.request) {
        Ok(caller) => caller,
        Err(e) => {
            replier.send(&to, Response::Error(e));
            return;
        }
    };
    if let Request::Control(ControlRequest::Whoami) = envelope.request {
        let identity = ControlReply::Identity {
            authenticated: caller.name.is_some(),
            name: caller.name,
            role: caller.role,
        };
        replier.send(&to, Response::Control(identity));
        return;
    }
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
            crate::runtime::metrics::METRICS
                .control_requests
                .get_or_create(&vec![("request", super::access::kind(&request))])
                .inc();
            let slot = match ctx.control_slots.take(&to.identity) {
                Ok(slot) => slot,
                Err(busy) => {
                    replier.error(&to, ErrorCode::Unavailable, busy);
                    return;
                }
            };
            let services = super::control::Services {
                core: ctx.core.clone(),
                store: ctx.store.clone(),
                catalog: ctx.catalog.clone(),
                scheduler: ctx.scheduler.clone(),
                reloader: ctx.reloader.clone(),
                query_limits: ctx.query_limits,
                retention: ctx.retention,
            };
            let audit = super::audit::begin(sender, &caller, &request);
            let sent = super::control::Sent {
                actor: super::audit::actor(&caller),
                audit: audit.as_ref().map(|a| a.entry()),
            };
            let store = ctx.store.clone();
            ctx.pending.spawn(async move {
                let response = super::control::handle(request, &services, sent).await;
                if let Some(entry) = audit {
                    entry.finish(&store, &response);
                }
                replier.send(&to, response);
                drop(slot);
            });
        }
    }
}
