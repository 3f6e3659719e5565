//! Sockets as the rest of cdktr sees them: a typed request/reply [`Client`] over one
//! long-lived DEALER per process, and helpers for frames.
//!
//! The zeromq crate's DEALER does not reconnect after its peer restarts (a `send` succeeds and
//! the message is lost), so the client treats any timeout as a dead connection: it drops the
//! socket and connects a new one, and callers retry what must not be lost.

mod client;

pub use client::{Client, ClientError};

use bytes::Bytes;
use zeromq::ZmqMessage;

/// A message from frames (never empty).
pub fn message(frames: Vec<Bytes>) -> ZmqMessage {
    let mut frames = frames.into_iter();
    let mut msg = ZmqMessage::from(frames.next().unwrap_or_default());
    for f in frames {
        msg.push_back(f);
    }
    msg
}
