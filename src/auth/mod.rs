//! Authentication for TCP: CURVE (libzmq) with per-client keys.
//!
//! - The principal has one key pair ([`PrincipalKey`], a file it creates 0600 on first use).
//! - Every client (agent, operator, viewer, listener) has a key pair in a credential file
//!   ([`Credential`]) that also holds the principal's public key, so clients and agents pin
//!   the principal: an impostor without its secret key completes no handshake.
//! - The principal's keys file ([`Keys`], like ssh's authorized_keys: `NAME ROLE PUBLIC-KEY`
//!   per line) lists who may connect and as what; it is re-read when it changes, so a removed
//!   line revokes at once, without a restart.
//! - [`zap`] answers libzmq's authentication requests from the keys file; the server reads
//!   the authenticated name off each message and checks the request against its role.

mod credential;
mod keys;
mod throttle;
pub mod zap;

pub use credential::{Credential, KeyPair, PrincipalKey};
pub use keys::{KeyEntry, Keys, KeysChange, KeysFile};
pub use throttle::LogThrottle;

/// Errors reading or writing key material, with the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: std::path::PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Zmq(#[from] zmq::Error),
    #[error("key encoding: {0}")]
    Encode(#[from] zmq::EncodeError),
}
