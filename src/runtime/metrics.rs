//! Prometheus metrics (`GET /metrics`, OpenMetrics text): one registry per process, filled by
//! the parts that see each event (coordinator, scheduler, store writer, agent) and by a
//! snapshot of the gauges taken at each scrape. Served on a loopback address only
//! (`metrics.listen`, `agent.metrics_listen`): the figures name workflows and agents.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Labels = Vec<(&'static str, String)>;

/// Every metric of the process. Names are prefixed `cdktr_`; counters end in `_total`.
pub struct Metrics {
    registry: Mutex<Registry>,
    // Principal: events.
    pub runs_ended: Family<Labels, Counter>,
    pub trigger_to_start: Histogram,
    pub fire_lag: Histogram,
    pub log_lines: Counter,
    pub store_write: Histogram,
    pub log_events: Family<Labels, Counter>,
    pub control_requests: Family<Labels, Counter>,
    // Principal: gauges set at each scrape.
    pub queue_length: Gauge,
    pub runs_running: Gauge,
    pub agents: Family<Labels, Gauge>,
    pub journal_depth: Gauge,
    pub store_degraded: Gauge,
    pub workflows: Family<Labels, Gauge>,
    // Agent.
    pub agent_runs_running: Gauge,
    pub agent_slots: Gauge,
    pub agent_spool_depth: Gauge,
}

fn seconds_histogram() -> Histogram {
    // 0.25 ms to about 4.4 minutes: trigger-to-start includes the time a run waits in the
    // queue for a free slot.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 21))
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("cdktr")),
            runs_ended: Family::default(),
            trigger_to_start: seconds_histogram(),
            fire_lag: seconds_histogram(),
            log_lines: Counter::default(),
            store_write: seconds_histogram(),
            log_events: Family::default(),
            control_requests: Family::default(),
            queue_length: Gauge::default(),
            runs_running: Gauge::default(),
            agents: Family::default(),
            journal_depth: Gauge::default(),
            store_degraded: Gauge::default(),
            workflows: Family::default(),
            agent_runs_running: Gauge::default(),
            agent_slots: Gauge::default(),
            agent_spool_depth: Gauge::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "runs_ended",
                "Runs ended, by final status",
                m.runs_ended.clone(),
            );
            r.register(
                "control_requests",
                "Control requests received (CLI, cockpit, API), by request type",
                m.control_requests.clone(),
            );
            r.register(
                "trigger_to_start_seconds",
                "From a run's trigger to its first task's start (as reported by its agent)",
                m.trigger_to_start.clone(),
            );
            r.register(
                "fire_lag_seconds",
                "From a schedule slot's time to the run being queued",
                m.fire_lag.clone(),
            );
            r.register(
                "log_lines_ingested",
                "Output lines received from agents",
                m.log_lines.clone(),
            );
            r.register(
                "store_write_seconds",
                "One store transaction (every write that arrived together)",
                m.store_write.clone(),
            );
            r.register(
                "log_events",
                "Warnings and errors this process logged",
                m.log_events.clone(),
            );
            r.register(
                "queue_length",
                "Runs waiting for an agent",
                m.queue_length.clone(),
            );
            r.register(
                "runs_running",
                "Runs being executed",
                m.runs_running.clone(),
            );
            r.register("agents", "Registered agents by state", m.agents.clone());
            r.register(
                "store_journal_depth",
                "Writes journaled but not yet applied to DuckDB",
                m.journal_depth.clone(),
            );
            r.register(
                "store_degraded",
                "1 while DuckDB refuses writes (they wait in the journal)",
                m.store_degraded.clone(),
            );
            r.register(
                "workflows",
                "Workflow files loaded, valid or invalid",
                m.workflows.clone(),
            );
            r.register(
                "agent_runs_running",
                "Runs this agent executes",
                m.agent_runs_running.clone(),
            );
            r.register(
                "agent_slots",
                "Runs this agent may execute at once",
                m.agent_slots.clone(),
            );
            r.register(
                "agent_spool_depth",
                "Records the principal has not acknowledged yet",
                m.agent_spool_depth.clone(),
            );
        }
        m
    }

    /// Counts one ended run.
    pub fn run_ended(&self, status: &str) {
        self.runs_ended
            .get_or_create(&vec![("status", status.to_owned())])
            .inc();
    }

    /// The registry in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if encode(&mut out, &registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Sets the gauges just before a scrape is answered.
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How long a scraper may take to send its request, and to be answered.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes answered at once; more connections are closed as they arrive.
const MAX_CONNECTIONS: usize = 16;
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `address` (checked to be loopback by the configuration), before anything else
/// starts, so a port in use stops the daemon at once.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot serve metrics on {address}: {e}"))
    })
}

/// Binds `address` and serves `/metrics` until `stop`; the bound address.
pub async fn bind_and_serve(
    address: &str,
    refresh: Refresh,
    stop: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    serve(bind(address).await?, refresh, stop)
}

/// Serves `/metrics` on `listener` until `stop`; the address it listens on.
pub fn serve(
    listener: TcpListener,
    refresh: Refresh,
    stop: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "metrics served at /metrics");
    let limits = super::http::Limits {
        max_connections: MAX_CONNECTIONS,
        read_timeout: READ_TIMEOUT,
        lifetime: READ_TIMEOUT * 3,
    };
    let handler = move |request: hyper::Request<hyper::body::Incoming>| {
        let refresh = refresh.clone();
        async move { answer(request.method(), request.uri().path(), &refresh).await }
    };
    tokio::spawn(super::http::serve(
        listener, limits, "metrics", stop, handler,
    ));
    Ok(bound)
}

async fn answer(method: &Method, path: &str, refresh: &Refresh) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        r
    };
    if path != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: metrics are at /metrics\n".into(),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    if tokio::time::timeout(READ_TIMEOUT, refresh()).await.is_err() {
        tracing::warn!("metrics: the gauges could not be read in time; serving the last values");
    }
    reply(StatusCode::OK, CONTENT_TYPE, METRICS.render())
}
