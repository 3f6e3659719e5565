//! The principal daemon: loads workflows, queues runs, answers agents and control clients,
//! detects dead agents and records everything in the store.
//!
//! Components, each owning its state:
//! - [`server`]: the ROUTER socket loop, decoding requests and routing them;
//! - [`coordinator`]: the queue, agent registry, active runs and dispatch behind a
//!   [`CoordinatorHandle`]; every state change goes through its event loop;
//! - [`scheduler`]: cron slots, handed to the coordinator when due;
//! - [`reload`]: keeps the workflow catalog current;
//! - [`control`]: control requests, answered by the coordinator, the scheduler, the store and
//!   the catalog;
//! - [`publisher`]: the live log stream (PUB socket).
//!
//! Imports go one way: server -> control -> coordinator / scheduler -> publisher, store (a
//! test in `tests/it/layout.rs` reads the `use` lines and fails on a cycle).
//!
//! [`run`] takes already-bound sockets and a shutdown token, so tests bind port 0 and never
//! install signal handlers.

mod access;
mod actions;
mod audit;
mod connections;
mod control;
mod coordinator;
mod labels;
pub mod local;
mod publisher;
mod reload;
mod retention;
mod scheduler;
mod server;
mod slots;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, KeysFile, PrincipalKey};
use crate::config::{AuthConfig, PrincipalConfig};
use crate::runtime::Clock;
use crate::store::{Store, StoreError};
use crate::transport::socket::{context, libzmq_endpoint};

pub use self::coordinator::CoordinatorHandle;

#[derive(Debug, thiserror::Error)]
pub enum PrincipalError {
    #[error("cannot bind {endpoint}: {source}")]
    Bind {
        endpoint: String,
        source: zmq::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot start a socket thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
    #[error("refusing to start: {0}")]
    Insecure(String),
    #[error("{0}")]
    Metrics(std::io::Error),
    #[error("control socket {}: {why}", path.display())]
    Local {
        path: std::path::PathBuf,
        why: String,
    },
}

/// The principal's sockets, bound and ready (libzmq sockets: each is handed to the thread
/// that will own it).
pub struct Sockets {
    pub api: zmq::Socket,
    pub api_endpoint: String,
    pub publish: zmq::Socket,
    pub publish_endpoint: String,
    /// The keys file, when the sockets require CURVE authentication.
    pub keys: Option<Arc<KeysFile>>,
    /// The local control socket and its stream (no CURVE: file permissions decide).
    pub local: Option<local::LocalSockets>,
    /// The metrics listener, bound with the rest (`metrics.listen`).
    pub metrics: Option<tokio::net::TcpListener>,
}

/// The principal's side of authentication: its key pair and the keys file of its clients.
pub struct Security {
    pub key: PrincipalKey,
    pub keys: Arc<KeysFile>,
}

/// Prepares authentication from `[auth]`: with a keys file, the principal's key pair (created
/// on first use) and the ZAP handler; without one, None, and only loopback endpoints are
/// accepted, since every client would be trusted.
pub fn secure(auth: &AuthConfig, endpoints: &[&str]) -> Result<Option<Security>, PrincipalError> {
    if auth.keys.as_os_str().is_empty() {
        if let Some(open) = endpoints.iter().find(|e| reachable_from_other_hosts(e)) {
            return Err(PrincipalError::Insecure(format!(
                "{open} accepts connections from other hosts, but no keys file is configured \
                 ([auth] keys), so anyone who reaches it could run anything: set auth.keys and \
                 create a credential per client with `cdktr keys new NAME --role \
                 agent|operator|viewer|trigger --out FILE`, or listen on 127.0.0.1"
            )));
        }
        return Ok(None);
    }
    let keys = Arc::new(KeysFile::new(&auth.keys));
    let listed = keys.read()?;
    tracing::info!(keys = %auth.keys.display(), clients = listed.entries.len(), "authentication on: CURVE");
    let key = PrincipalKey::load_or_create(&auth.principal_key)?;
    auth::zap::start(keys.clone())?;
    Ok(Some(Security { key, keys }))
}

/// Whether a `tcp://` endpoint listens beyond this host.
fn reachable_from_other_hosts(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("tcp://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    !(host == "localhost" || host == "::1" || host.starts_with("127."))
}

/// Binds the API and log-publishing sockets (`tcp://127.0.0.1:0` picks a free port; the
/// resolved endpoints are in the result), and the local control socket. Their limits
/// (message size, handshake time, connection count) are set before binding: libzmq applies
/// socket options only to connections made after them.
pub async fn bind(
    config: &PrincipalConfig,
    security: Option<&Security>,
    metrics_listen: &str,
) -> Result<Sockets, PrincipalError> {
    let metrics = match metrics_listen {
        "" => None,
        address => Some(
            crate::runtime::metrics::bind(address)
                .await
                .map_err(PrincipalError::Metrics)?,
        ),
    };
    let (api, publish) = (config.listen.as_str(), config.logs_publish.as_str());
    let max_message_bytes = config.max_message_bytes;
    let handshake = i32::try_from(config.handshake_timeout.as_millis())
        .unwrap_or(i32::MAX)
        .max(1);
    let mut monitor = connections::Monitor::new(config.max_connections);
    let mut tcp_options = |socket: &zmq::Socket, domain: &str| -> zmq::Result<()> {
        socket.set_handshake_ivl(handshake)?;
        monitor.attach(socket)?;
        if let Some(s) = security {
            socket.set_curve_server(true)?;
            socket.set_curve_secretkey(s.key.pair.secret.as_bytes())?;
            socket.set_zap_domain(domain)?;
        }
        Ok(())
    };
    let (api_socket, api_endpoint) = bound(zmq::ROUTER, api, |s| {
        server::configure(s, max_message_bytes)?;
        tcp_options(s, auth::zap::API_DOMAIN)
    })?;
    let (pub_socket, publish_endpoint) = bound(zmq::PUB, publish, |s| {
        publisher::configure(s)?;
        tcp_options(s, auth::zap::STREAM_DOMAIN)
    })?;
    monitor.start()?;
    let local = if local::fits(&config.control_socket) {
        Some(local::bind(
            &config.control_socket,
            &config.control_group,
            |s| server::configure(s, max_message_bytes),
            publisher::configure,
        )?)
    } else {
        tracing::warn!(
            path = %config.control_socket.display(),
            "no local control socket: its path is longer than a unix socket allows; set \
             principal.control_socket to a shorter path"
        );
        None
    };
    Ok(Sockets {
        api: api_socket,
        api_endpoint,
        publish: pub_socket,
        publish_endpoint,
        keys: security.map(|s| s.keys.clone()),
        local,
        metrics,
    })
}

/// A socket of `kind`, configured by `options`, bound to `endpoint`, and the endpoint it got.
fn bound(
    kind: zmq::SocketType,
    endpoint: &str,
    options: impl FnOnce(&zmq::Socket) -> zmq::Result<()>,
) -> Result<(zmq::Socket, String), PrincipalError> {
    let error = |source| PrincipalError::Bind {
        endpoint: endpoint.to_owned(),
        source,
    };
    let socket = context().socket(kind).map_err(error)?;
    options(&socket).map_err(error)?;
    socket.bind(&libzmq_endpoint(endpoint)).map_err(error)?;
    let resolved = socket
        .get_last_endpoint()
        .map_err(error)?
        .unwrap_or_else(|_| endpoint.to_owned());
    Ok((socket, resolved))
}

/// What the principal tells its caller once it serves.
#[derive(Clone, Debug)]
pub struct Ready {
    pub api: String,
    pub logs_publish: String,
    /// The local control socket's endpoint, when there is one.
    pub control: Option<String>,
    pub workflows: usize,
    /// The metrics endpoint's address, when metrics are served.
    pub metrics: Option<String>,
    /// How far the store has written: unchanged while the principal is idle.
    pub store_progress: crate::store::Progress,
}

/// Runs the principal until `shutdown` is cancelled, then stops accepting, lets in-flight
/// work finish, flushes and closes the store. `reload` re-reads the workflow directory.
pub async fn run(
    config: PrincipalConfig,
    retention_config: crate::config::RetentionConfig,
    sockets: Sockets,
    shutdown: CancellationToken,
    reload: Arc<Notify>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), PrincipalError> {
    let (db_path, memory_mb) = (config.db_path.clone(), config.store_memory_mb);
    let (store, store_guard) =
        tokio::task::spawn_blocking(move || Store::open_limited(&db_path, memory_mb)).await??;
    let loaded = reload::load(&config).await;
    let fingerprint = loaded.fingerprint;
    let catalog = Arc::new(loaded.catalog);
    let workflows = catalog.workflows.len();
    let (catalog_tx, catalog_rx) = watch::channel(catalog);

    let tracker = TaskTracker::new();
    let mut publish_sockets = vec![sockets.publish];
    let mut local = None;
    let mut logs_publish_local = None;
    if let Some(l) = sockets.local {
        publish_sockets.push(l.publish);
        logs_publish_local = Some(l.publish_endpoint);
        local = Some((l.api, l.files, l.api_endpoint));
    }
    let publisher = publisher::spawn(publish_sockets)?;
    let pending = TaskTracker::new();
    let clock = Clock::system();
    let core = coordinator::spawn(
        &tracker,
        coordinator::Settings {
            heartbeat_timeout: config.heartbeat_timeout,
            long_poll: Duration::from_secs(20),
            logs_publish: sockets.publish_endpoint.clone(),
            logs_publish_local,
            max_queued_runs: config.max_queued_runs,
        },
        coordinator::Links {
            store: store.clone(),
            publisher,
            catalog: catalog_rx.clone(),
            pending: pending.clone(),
            clock: clock.clone(),
        },
        shutdown.child_token(),
    )
    .await?;
    let scheduler = scheduler::spawn(
        &tracker,
        scheduler::Links {
            core: core.clone(),
            store: store.clone(),
            catalog: catalog_rx.clone(),
            clock,
        },
        config.catchup_limit,
        shutdown.child_token(),
    )
    .await?;
    let reloader = reload::spawn(
        &tracker,
        config.clone(),
        catalog_tx,
        fingerprint,
        reload,
        shutdown.child_token(),
    );
    retention::spawn(
        &tracker,
        store.clone(),
        retention_config.clone(),
        shutdown.child_token(),
    );
    tracker.spawn(labels::watch_unknown(
        catalog_rx.clone(),
        store.clone(),
        shutdown.child_token(),
    ));
    if let Some(mut changes) = sockets.keys.as_ref().and_then(|k| k.watch_changes()) {
        let store = store.clone();
        let stop = shutdown.child_token();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    change = changes.recv() => match change {
                        Some((before, after)) => audit::keys_changed(&store, &before, &after),
                        None => break,
                    },
                }
            }
        });
    }
    let ctx_scheduler = scheduler.clone();
    let server_stop = CancellationToken::new();
    let ctx = Arc::new(server::Context {
        core: core.clone(),
        store: store.clone(),
        catalog: catalog_rx,
        scheduler: scheduler.clone(),
        reloader,
        retention: retention_config.policy(),
        query_limits: crate::store::sql::Limits {
            max_rows: config.query_max_rows,
            timeout: config.query_timeout,
            max_bytes: config.max_message_bytes,
        },
        max_message_bytes: config.max_message_bytes,
        access: access::Access::new(sockets.keys.clone()),
        control_slots: slots::ControlSlots::new(),
        pending,
    });
    let mut servers = vec![tracker.spawn(server::serve(
        sockets.api,
        ctx.clone(),
        access::Origin::Tcp,
        server_stop.clone(),
    ))];
    let mut control = None;
    let mut _local_files = None;
    if let Some((socket, files, endpoint)) = local {
        servers.push(tracker.spawn(server::serve(
            socket,
            ctx,
            access::Origin::Local,
            server_stop.clone(),
        )));
        control = Some(endpoint);
        _local_files = Some(files);
    }

    let metrics = match sockets.metrics {
        None => None,
        Some(listener) => {
            let refresh = watchdog::gauges(core.clone(), store.clone());
            let served = crate::runtime::metrics::serve(listener, refresh, shutdown.child_token());
            Some(served.map_err(PrincipalError::Metrics)?.to_string())
        }
    };
    watchdog::spawn(
        &tracker,
        watchdog::Parts {
            core: core.clone(),
            scheduler: ctx_scheduler,
            store: store.clone(),
        },
        shutdown.child_token(),
    );
    on_ready(&Ready {
        store_progress: store.progress(),
        api: sockets.api_endpoint,
        logs_publish: sockets.publish_endpoint,
        control,
        workflows,
        metrics,
    });
    shutdown.cancelled().await;
    tracing::info!("shutting down: no longer accepting requests");
    server_stop.cancel();
    for server in servers {
        let _ = server.await;
    }
    drop(core);
    drop(store);
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some tasks did not stop within 10s");
    }
    tracing::info!("flushing and closing the store");
    tokio::task::spawn_blocking(move || store_guard.close()).await?;
    Ok(())
}
