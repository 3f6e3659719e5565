//! The live log stream: where it is (the principal says what it bound) and a subscription
//! to it with a topic prefix (see `protocol::logs`).

use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use super::socket::{self, context, Outbox};
use crate::protocol::logs::LogEvent;
use crate::transport::{Client, ClientError};

impl Client {
    /// The live stream endpoint, as this client can reach it: the principal reports what it
    /// bound, and a wildcard host is replaced by the host this client connects to.
    pub async fn stream_endpoint(&self) -> Result<String, ClientError> {
        let status = self.status().await?;
        if self.endpoint().starts_with("ipc://") {
            if let Some(local) = status.logs_publish_local {
                return Ok(local);
            }
        }
        let published = status.logs_publish;
        let host_of = |e: &str| {
            e.strip_prefix("tcp://")
                .and_then(|r| r.rsplit_once(':'))
                .map(|(h, _)| h.to_owned())
        };
        match (host_of(&published), published.rsplit_once(':')) {
            (Some(h), Some((_, port))) if h == "0.0.0.0" || h == "*" || h == "[::]" => {
                let host = host_of(self.endpoint()).unwrap_or_else(|| "127.0.0.1".into());
                Ok(format!("tcp://{host}:{port}"))
            }
            _ => Ok(published),
        }
    }

    /// Subscribes to the live stream with a topic prefix (see `protocol::logs`).
    /// Like every ZeroMQ subscription it takes effect shortly after this returns, and the
    /// stream may drop events: live views re-read the store as well.
    pub async fn subscribe(&self, prefix: &[u8]) -> anyhow::Result<Subscription> {
        let endpoint = self.stream_endpoint().await?;
        let socket = context()
            .socket(zmq::SUB)
            .context("creating a live log stream socket")?;
        socket.set_linger(0)?;
        if let Some(c) = self.credential() {
            c.apply(&socket).context("live log stream credential")?;
        }
        socket
            .set_subscribe(prefix)
            .context("subscribing to the live log stream")?;
        socket
            .connect(&endpoint)
            .with_context(|| format!("cannot reach the live log stream at {endpoint}"))?;
        let (tx, events) = mpsc::channel(socket::INCOMING);
        let (outbox, _thread) = socket::spawn("cdktr-stream", socket, tx, |_, ()| {})?;
        Ok(Subscription {
            events,
            _thread: outbox,
        })
    }
}

pub struct Subscription {
    events: mpsc::Receiver<socket::Received>,
    /// Dropping it ends the socket's thread.
    _thread: Outbox<()>,
}

/// How often a live view re-reads the run from the store: the stream may drop events.
const RECHECK: Duration = Duration::from_secs(2);

impl Subscription {
    /// Hands live events to `on_event` until the run ends (`run_ended`) or it is time to
    /// re-read the store.
    pub async fn until_run_end_or_recheck(
        &mut self,
        mut on_event: impl FnMut(LogEvent) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let recheck = tokio::time::sleep(RECHECK);
        tokio::pin!(recheck);
        loop {
            tokio::select! {
                _ = &mut recheck => return Ok(()),
                event = self.next() => match event? {
                    LogEvent::RunEnded { .. } => return Ok(()),
                    other => on_event(other)?,
                },
            }
        }
    }

    /// Drops the events already received (a view that re-reads the store after one ring
    /// needs no more of them).
    pub fn discard_waiting(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// The next event; undecodable messages are skipped.
    pub async fn next(&mut self) -> anyhow::Result<LogEvent> {
        loop {
            let mut frames = self
                .events
                .recv()
                .await
                .context("live log stream closed")?
                .frames;
            let Some(body) = frames.pop() else {
                continue;
            };
            if let Ok(event) = serde_json::from_slice::<LogEvent>(&body) {
                return Ok(event);
            }
        }
    }
}
