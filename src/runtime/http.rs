//! The one HTTP/1 server of the daemons and listeners (the webhook, the metrics endpoint):
//! hyper with every bound in our hands: at most `max_connections` served at once (more are
//! closed as they arrive), headers within `read_timeout`, a connection's whole life within
//! `lifetime`. What each request gets is the caller's `handler`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A handler's answer, boxed (for a handler that must be named as a type).
pub type Reply = std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// The bounds of one server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// How long a client may take to send its headers.
    pub read_timeout: Duration,
    /// How long one connection may stay open.
    pub lifetime: Duration,
}

/// Accepts on `listener` until `stop`, serving each connection with `handler` within `limits`;
/// `what` names the server in the log.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Limits,
    what: &'static str,
    stop: CancellationToken,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(server = what, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(server = what, %peer, "too many connections: closing this one");
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, limits, handler).await {
                tracing::debug!(server = what, %peer, error = %e, "connection ended");
            }
            drop(slot);
        });
    }
}

/// Serves one HTTP/1 connection on `io` (a TCP stream, or any byte stream in the fuzz
/// harness) within `limits`; why it ended, when not cleanly.
pub async fn serve_connection<I, H, F>(io: I, limits: Limits, handler: H) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let reply = handler(request);
        async move { Ok::<_, Infallible>(reply.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .serve_connection(TokioIo::new(io), service);
    match tokio::time::timeout(limits.lifetime, connection).await {
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("closed: open too long".into()),
        Ok(Ok(())) => Ok(()),
    }
}
