//! The live log stream: a PUB socket fed through a channel, so publishing never blocks the
//! coordinator. Slow subscribers lose messages (ZeroMQ PUB semantics); the store keeps all.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use zeromq::SocketSend;

use crate::protocol::logs::{topic_of, LogEvent};
use crate::transport::message;

/// Handle for publishing events.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<LogEvent>,
}

impl Publisher {
    pub fn publish(&self, event: LogEvent) {
        let _ = self.tx.send(event);
    }

    /// A publisher with no socket behind it (unit tests of its users).
    #[cfg(test)]
    pub fn discard() -> Publisher {
        let (tx, _) = mpsc::unbounded_channel();
        Publisher { tx }
    }
}

pub fn spawn(
    tracker: &TaskTracker,
    mut socket: zeromq::PubSocket,
    stop: CancellationToken,
) -> Publisher {
    let (tx, mut rx) = mpsc::unbounded_channel::<LogEvent>();
    tracker.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => return,
                e = rx.recv() => match e { Some(e) => e, None => return },
            };
            let topic = topic_of(&event);
            let body = crate::protocol::encode(&event);
            if let Err(e) = socket.send(message(vec![topic.into(), body.into()])).await {
                tracing::debug!(error = %e, "publish failed");
            }
        }
    });
    Publisher { tx }
}
