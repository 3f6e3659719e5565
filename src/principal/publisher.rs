//! The live log stream: a PUB socket on its own thread, fed through a channel, so publishing
//! never blocks the coordinator. Slow subscribers lose messages (ZeroMQ PUB semantics, past a
//! high-water mark of 100,000 messages); the store keeps everything.

use std::sync::mpsc;

use crate::protocol::logs::{topic_of, LogEvent};

/// Messages queued for one subscriber before it loses some.
const HIGH_WATER_MARK: i32 = 100_000;

/// Handle for publishing events. The socket's thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<LogEvent>,
}

impl Publisher {
    pub fn publish(&self, event: LogEvent) {
        let _ = self.tx.send(event);
    }

    /// A publisher with no socket behind it (unit tests of its users).
    #[cfg(test)]
    pub fn discard() -> Publisher {
        let (tx, _) = mpsc::channel();
        Publisher { tx }
    }
}

/// Sets the PUB socket's options; call before binding (libzmq applies them to connections
/// made after).
pub fn configure(socket: &zmq::Socket) -> zmq::Result<()> {
    socket.set_sndhwm(HIGH_WATER_MARK)?;
    socket.set_linger(0)
}

/// Publishes every event on each of `sockets` (the TCP stream and the local one).
pub fn spawn(sockets: Vec<zmq::Socket>) -> std::io::Result<Publisher> {
    let (tx, rx) = mpsc::channel::<LogEvent>();
    std::thread::Builder::new()
        .name("cdktr-publish".into())
        .spawn(move || {
            for event in rx {
                let topic = topic_of(&event);
                let body = crate::protocol::encode(&event);
                for socket in &sockets {
                    if let Err(e) =
                        socket.send_multipart([topic.as_slice(), body.as_slice()], zmq::DONTWAIT)
                    {
                        tracing::debug!(error = %e, "publish failed");
                    }
                }
            }
        })?;
    Ok(Publisher { tx })
}
