//! The cap on TCP connections. libzmq accepts every connection it is offered and has no limit
//! of its own, so a flood of idle connections could take every file descriptor the principal
//! has (and with them its database and journal files). libzmq's socket monitor reports each
//! accepted connection (with its descriptor) and each closed one; past
//! `principal.max_connections` open at once, the newest are shut down at once, which libzmq
//! then closes as if the peer had left. Connections that never finish their handshake are
//! closed by libzmq itself after `principal.handshake_timeout`, so connections that never
//! authenticate cannot hold places for long. (A client that does authenticate can hold as many
//! as it opens, up to the cap: revoke a credential that misbehaves.)
//!
//! The monitor reports asynchronously: a descriptor it names may already be closed. All
//! waiting events are read before any descriptor is acted on, so one whose close is already
//! reported is never touched; and a descriptor is shut down only while it is still a TCP
//! socket on the port of the listener that accepted it (had libzmq closed it and the number
//! been reused, it would be something else, or another connection just accepted there).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::auth::LogThrottle;
use crate::transport::socket::context;

/// Watches the connections of the sockets it is attached to.
pub struct Monitor {
    max: usize,
    watchers: Vec<zmq::Socket>,
}

impl Monitor {
    pub fn new(max: usize) -> Monitor {
        Monitor {
            max,
            watchers: Vec::new(),
        }
    }

    /// Starts reporting `socket`'s connections here (call before the socket binds).
    pub fn attach(&mut self, socket: &zmq::Socket) -> zmq::Result<()> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let endpoint = format!(
            "inproc://cdktr-monitor-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let events = zmq::SocketEvent::ACCEPTED as i32
            | zmq::SocketEvent::DISCONNECTED as i32
            | zmq::SocketEvent::CLOSED as i32;
        socket.monitor(&endpoint, events)?;
        let watcher = context().socket(zmq::PAIR)?;
        watcher.connect(&endpoint)?;
        self.watchers.push(watcher);
        Ok(())
    }

    /// Enforces the cap from a thread of its own, for the life of the process.
    pub fn start(self) -> std::io::Result<()> {
        if self.watchers.is_empty() {
            return Ok(());
        }
        std::thread::Builder::new()
            .name("cdktr-connections".into())
            .spawn(move || self.run())?;
        Ok(())
    }

    fn run(self) {
        let mut open = BTreeSet::new();
        let logged = LogThrottle::default();
        loop {
            let mut items: Vec<zmq::PollItem<'_>> = self
                .watchers
                .iter()
                .map(|w| w.as_poll_item(zmq::POLLIN))
                .collect();
            match zmq::poll(&mut items, -1) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => {
                    tracing::error!(error = %e, "connection monitor stopped");
                    return;
                }
            }
            drop(items);
            let mut accepted = Vec::new();
            for watcher in &self.watchers {
                while let Some((event, fd, port)) = next_event(watcher) {
                    match event {
                        zmq::SocketEvent::ACCEPTED => {
                            open.insert(fd);
                            accepted.push((fd, port));
                        }
                        _ => {
                            open.remove(&fd);
                            accepted.retain(|&(a, _)| a != fd);
                        }
                    }
                }
            }
            while open.len() > self.max {
                let Some((fd, port)) = accepted.pop() else {
                    break;
                };
                open.remove(&fd);
                if port.is_some() && local_port(fd) != port {
                    continue;
                }
                // Ends the connection on `fd`, which libzmq still holds open (its close is not
                // reported); libzmq then closes it itself.
                let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
                if logged.due("max_connections") {
                    tracing::warn!(
                        max = self.max,
                        "connection refused: too many open (principal.max_connections)"
                    );
                }
            }
        }
    }
}

/// The local TCP port of socket `fd`, if it is a TCP socket.
fn local_port(fd: i32) -> Option<u16> {
    use nix::sys::socket::{getsockname, SockaddrLike, SockaddrStorage};
    let addr: SockaddrStorage = getsockname(fd).ok()?;
    match addr.family()? {
        nix::sys::socket::AddressFamily::Inet => addr.as_sockaddr_in().map(|a| a.port()),
        nix::sys::socket::AddressFamily::Inet6 => addr.as_sockaddr_in6().map(|a| a.port()),
        _ => None,
    }
}

/// The next waiting event, the descriptor it concerns and the port of the listener's endpoint
/// (`tcp://HOST:PORT`), without blocking.
fn next_event(watcher: &zmq::Socket) -> Option<(zmq::SocketEvent, i32, Option<u16>)> {
    loop {
        let frames = watcher.recv_multipart(zmq::DONTWAIT).ok()?;
        let port = frames.get(1).and_then(|e| {
            std::str::from_utf8(e)
                .ok()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()
        });
        let head = frames.first()?;
        if head.len() < 6 {
            continue;
        }
        let event = u16::from_le_bytes([head[0], head[1]]);
        let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
        let event = zmq::SocketEvent::from_raw(event);
        if matches!(
            event,
            zmq::SocketEvent::ACCEPTED | zmq::SocketEvent::DISCONNECTED | zmq::SocketEvent::CLOSED
        ) {
            return Some((event, value as i32, port));
        }
    }
}
