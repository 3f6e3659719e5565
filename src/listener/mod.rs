//! Event listeners: turn outside events into runs. [`webhook`] (HTTP) and [`files`] (file
//! arrival) are the two shipped with cdktr; a Rust listener needs only
//! [`Client::trigger`](crate::transport::Client::trigger). Listeners in other languages send
//! the documented trigger request (`docs/protocol.md`); `examples/trigger.py` is one in
//! Python.

pub mod files;
pub mod webhook;
