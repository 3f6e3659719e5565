//! Sockets as the rest of cdktr sees them: one typed [`Client`] over one long-lived DEALER
//! per process (a method per control request, the live stream), on libzmq.
//!
//! libzmq sockets live on threads of their own ([`socket`]). A DEALER reconnects by itself,
//! but a request queued for a principal that does not answer must not be delivered late, so
//! the client treats any timeout as a dead connection: it drops the socket (and what it had
//! queued) and connects a new one, and callers retry what must not be lost.

mod client;
mod control;
pub mod socket;
mod stream;

pub use client::{Client, ClientError};
pub use control::{LineFilter, LogPage, LogQuery, Reloaded, WorkflowListing};
pub use stream::Subscription;
