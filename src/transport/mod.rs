//! Sockets as the rest of cdktr sees them: one typed [`Client`] over one long-lived DEALER
//! per process (a method per control request, the live stream), and helpers for frames.
//!
//! The zeromq crate's DEALER does not reconnect after its peer restarts (a `send` succeeds and
//! the message is lost), so the client treats any timeout as a dead connection: it drops the
//! socket and connects a new one, and callers retry what must not be lost.

mod client;
mod control;
mod stream;

pub use client::{Client, ClientError};
pub use control::{LogPage, LogQuery, Reloaded, WorkflowListing};
pub use stream::Subscription;

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
