//! libzmq sockets on threads of their own. A libzmq socket is neither thread-safe nor async,
//! so each lives on one OS thread that polls it together with a wake-up pipe: what the socket
//! receives goes out on a bounded tokio channel, what async code hands to the [`Outbox`] is
//! sent. An idle socket thread sleeps in `zmq_poll` and costs no CPU. When the reader of the
//! channel falls behind, the thread stops reading, so libzmq's receive high-water mark and TCP
//! push back on the peer instead of memory growing here.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use tokio::sync::mpsc::Sender;

/// Messages waiting between a socket thread and its reader.
pub const INCOMING: usize = 1024;

/// Messages read in one go before the thread looks at what it has to send.
const READ_BATCH: usize = 256;

/// One message: its frames.
pub type Frames = Vec<Vec<u8>>;

/// One received message, with the name its sender authenticated as (CURVE, from the ZAP
/// handler), if any.
pub struct Received {
    pub frames: Frames,
    pub user: Option<String>,
    /// libzmq's `Peer-Address`: the peer's IP for TCP, `…:UID:GID:PID` for a unix socket.
    pub peer: Option<String>,
}

/// One libzmq context for the process (its I/O threads serve every socket).
pub fn context() -> &'static zmq::Context {
    static CONTEXT: OnceLock<zmq::Context> = OnceLock::new();
    CONTEXT.get_or_init(zmq::Context::new)
}

/// libzmq spells "any free port" `*`; cdktr's endpoints say `:0` as the OS does.
pub fn libzmq_endpoint(endpoint: &str) -> String {
    match endpoint.strip_suffix(":0") {
        Some(host) if endpoint.starts_with("tcp://") => format!("{host}:*"),
        _ => endpoint.to_owned(),
    }
}

/// Hands items to a socket thread. Cloneable; when the last clone is dropped the thread sends
/// what is queued and ends.
pub struct Outbox<T> {
    tx: mpsc::Sender<Item<T>>,
    wake: Arc<UnixStream>,
}

enum Item<T> {
    Send(T),
    /// Send what came before, then end the thread.
    Stop,
}

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox {
            tx: self.tx.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<T> Outbox<T> {
    /// Queues `item`; false when the socket thread has ended.
    pub fn send(&self, item: T) -> bool {
        self.push(Item::Send(item))
    }

    /// Ends the thread once what was queued before is sent, even while other clones live.
    pub fn close(&self) {
        self.push(Item::Stop);
    }

    fn push(&self, item: Item<T>) -> bool {
        if self.tx.send(item).is_err() {
            return false;
        }
        // A full pipe already holds a wake-up: the write may fail harmlessly.
        let _ = (&*self.wake).write(&[1]);
        true
    }
}

/// Starts the thread that owns `socket`. Each received message (its frames) goes to
/// `incoming` (make it with [`INCOMING`] places); each item given to the returned [`Outbox`]
/// is passed to `send` with the socket. The thread ends when every outbox is dropped or
/// closed (after sending what was queued) or when `incoming` is closed.
pub fn spawn<T: Send + 'static>(
    name: &str,
    socket: zmq::Socket,
    incoming: Sender<Received>,
    mut send: impl FnMut(&zmq::Socket, T) + Send + 'static,
) -> std::io::Result<(Outbox<T>, JoinHandle<()>)> {
    let (wake_read, wake_write) = UnixStream::pair()?;
    wake_read.set_nonblocking(true)?;
    wake_write.set_nonblocking(true)?;
    let (tx, rx) = mpsc::channel::<Item<T>>();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut wake_read = wake_read;
            loop {
                let (readable, woken) = {
                    let mut items = [
                        socket.as_poll_item(zmq::POLLIN),
                        zmq::PollItem::from_fd(wake_read.as_raw_fd(), zmq::POLLIN),
                    ];
                    match zmq::poll(&mut items, -1) {
                        Ok(_) => (items[0].is_readable(), items[1].is_readable()),
                        Err(zmq::Error::EINTR) => continue,
                        Err(e) => {
                            tracing::error!(error = %e, "socket poll failed; the socket stops");
                            return;
                        }
                    }
                };
                if readable && !receive_all(&socket, &incoming) {
                    return;
                }
                if woken {
                    let mut drained = [0u8; 256];
                    while matches!(wake_read.read(&mut drained), Ok(n) if n > 0) {}
                    loop {
                        match rx.try_recv() {
                            Ok(Item::Send(item)) => send(&socket, item),
                            Ok(Item::Stop) | Err(TryRecvError::Disconnected) => return,
                            Err(TryRecvError::Empty) => break,
                        }
                    }
                }
            }
        })?;
    Ok((
        Outbox {
            tx,
            wake: Arc::new(wake_write),
        },
        thread,
    ))
}

/// Reads the messages waiting, at most [`READ_BATCH`] (the socket stays readable for the next
/// poll), waiting for room in `incoming` when its reader is behind; false when nobody listens
/// any more.
fn receive_all(socket: &zmq::Socket, incoming: &Sender<Received>) -> bool {
    for _ in 0..READ_BATCH {
        match receive(socket) {
            Ok(received) => {
                if incoming.blocking_send(received).is_err() {
                    return false;
                }
            }
            Err(zmq::Error::EAGAIN) => return true,
            Err(zmq::Error::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "receive failed");
                return true;
            }
        }
    }
    true
}

/// One whole message (its first frame without waiting), with its sender's `User-Id` and
/// `Peer-Address`.
fn receive(socket: &zmq::Socket) -> zmq::Result<Received> {
    let mut frames = Vec::new();
    let mut user = None;
    let mut peer = None;
    let mut flags = zmq::DONTWAIT;
    loop {
        let mut msg = socket.recv_msg(flags)?;
        flags = 0;
        // A ROUTER's identity frame carries no properties; the peer's frames do.
        if user.is_none() {
            user = msg
                .gets("User-Id")
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
        }
        if peer.is_none() {
            peer = msg
                .gets("Peer-Address")
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
        }
        let more = msg.get_more();
        frames.push(msg.to_vec());
        if !more {
            return Ok(Received { frames, user, peer });
        }
    }
}
