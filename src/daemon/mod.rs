//! Entry points of the two daemons (`cdktr-principal`, `cdktr-agent`): resolve configuration,
//! set up logging, signals and the runtime, run, map the outcome to an exit code.
//!
//! The principal's entry point is a module of its own so that nothing the agent's, the CLI's
//! or the cockpit's code is compiled with refers to the store: those binaries link without
//! DuckDB (`tests/it/layout.rs` checks it), start in a millisecond and stay small.

mod principal_main;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Inputs};
use crate::{agent, runtime};

pub use principal_main::{principal_main, PrincipalArgs, PrincipalCli};

/// `cdktr-agent`'s command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cdktr-agent",
    version,
    about = "cdktr agent daemon: registers with the principal, pulls runs when it has a free slot, executes their task DAGs",
    after_help = "Example: cdktr-agent --principal tcp://10.0.0.5:5561 --name web1 --label gpu --shutdown drain"
)]
pub struct AgentCli {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub agent: AgentArgs,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// Principal endpoint to connect to (agent.principal).
    #[arg(long, value_name = "ENDPOINT")]
    pub principal: Option<String>,
    /// Agent name; the agent id is NAME@HOST (agent.name, default the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Runs this agent executes at once (agent.max_concurrent_workflows).
    #[arg(long, value_name = "N")]
    pub max_concurrent_workflows: Option<String>,
    /// Heartbeat interval, e.g. 5s (agent.heartbeat_interval).
    #[arg(long, value_name = "DURATION")]
    pub heartbeat_interval: Option<String>,
    /// A label this agent offers: `gpu` or `region=eu`; repeat for more (agent.labels).
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// What a stop does to running tasks: drain or cancel (agent.shutdown).
    #[arg(long, value_name = "MODE")]
    pub shutdown: Option<String>,
    /// The longest a stop waits for running tasks, e.g. 5m (agent.shutdown_timeout).
    #[arg(long, value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// Serve Prometheus metrics on this loopback HOST:PORT (agent.metrics_listen).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub detach: DetachArgs,
}

/// How a daemon runs outside systemd (under systemd it stays in the foreground, `Type=notify`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DetachArgs {
    /// Run in the background: returns once the daemon is ready (or with its error).
    #[arg(long, requires = "log_file")]
    pub daemon: bool,
    /// With --daemon: write the daemon's pid here (locked while it runs, removed on exit).
    #[arg(long, value_name = "FILE", requires = "daemon")]
    pub pid_file: Option<PathBuf>,
    /// Append the log (and the ready line) to this file instead of stderr; reopened on SIGHUP,
    /// for logrotate.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

impl DetachArgs {
    /// Makes the paths absolute: the daemon runs on in the same directory, but a pid file
    /// named relative to it is easy to lose.
    fn absolute(mut self) -> Self {
        let cwd = std::env::current_dir().unwrap_or_default();
        for p in [&mut self.pid_file, &mut self.log_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = cwd.join(&*p);
            }
        }
        self
    }
}

pub(crate) type Flags = Vec<(&'static str, String, String)>;

pub(crate) fn flag(flags: &mut Flags, key: &'static str, value: Option<String>, name: &str) {
    if let Some(v) = value {
        flags.push((key, v, format!("--{name}")));
    }
}

impl AgentArgs {
    fn flags(&self) -> Flags {
        let mut f = Vec::new();
        flag(
            &mut f,
            "agent.principal",
            self.principal.clone(),
            "principal",
        );
        flag(&mut f, "agent.name", self.name.clone(), "name");
        flag(
            &mut f,
            "agent.max_concurrent_workflows",
            self.max_concurrent_workflows.clone(),
            "max-concurrent-workflows",
        );
        flag(
            &mut f,
            "agent.heartbeat_interval",
            self.heartbeat_interval.clone(),
            "heartbeat-interval",
        );
        if !self.labels.is_empty() {
            flag(&mut f, "agent.labels", Some(self.labels.join(",")), "label");
        }
        flag(&mut f, "agent.shutdown", self.shutdown.clone(), "shutdown");
        flag(
            &mut f,
            "agent.shutdown_timeout",
            self.shutdown_timeout.clone(),
            "shutdown-timeout",
        );
        flag(
            &mut f,
            "agent.metrics_listen",
            self.metrics_listen.clone(),
            "metrics-listen",
        );
        f
    }
}

fn resolve(config_file: Option<PathBuf>, flags: Flags) -> Result<config::Resolved, ExitCode> {
    resolve_quietly(config_file, flags).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Shared set-up of both daemons: configuration, detaching (`--daemon`), logging, runtime,
/// signal handling; then `body` with the resolved configuration, the shutdown token and the
/// reload signal. SIGHUP re-reads the configuration's log level and reopens the log file.
pub(crate) fn run_daemon<F, Fut>(
    name: &str,
    config_file: Option<PathBuf>,
    flags: Flags,
    detach: DetachArgs,
    body: F,
) -> ExitCode
where
    F: FnOnce(config::Config, CancellationToken, Arc<Notify>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let detach = detach.absolute();
    let resolved = match resolve(config_file.clone(), flags.clone()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if detach.daemon {
        let log_file = detach
            .log_file
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        match runtime::detach::detach(name, detach.pid_file.as_deref(), log_file) {
            runtime::detach::Detached::Daemon => {}
            runtime::detach::Detached::Exit(code) => return ExitCode::from(code),
        }
    }
    if let Err(e) = runtime::logging::init(&resolved.config.log.level, detach.log_file.as_deref()) {
        eprintln!("error: {e}");
        runtime::detach::failed(&e.to_string());
        return ExitCode::FAILURE;
    }
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        let on_hangup = move || {
            runtime::logging::reopen();
            match resolve_quietly(config_file.clone(), flags.clone()) {
                Ok(r) => runtime::logging::set_level(&r.config.log.level),
                Err(e) => tracing::warn!(error = %e, "configuration not re-read; the log level is unchanged"),
            }
        };
        if let Err(e) = runtime::handle_signals(shutdown.clone(), reload.clone(), on_hangup) {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        let code = body(resolved.config, shutdown, reload).await;
        runtime::systemd::stopping();
        code
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(p) = &detach.pid_file {
        let _ = std::fs::remove_file(p);
    }
    code
}

fn resolve_quietly(
    config_file: Option<PathBuf>,
    flags: Flags,
) -> Result<config::Resolved, config::ConfigError> {
    let mut inputs = Inputs::from_process(config_file);
    inputs.flags = flags;
    config::resolve(&inputs)
}

/// `cdktr-agent`.
pub fn agent_main(config_file: Option<PathBuf>, args: AgentArgs) -> ExitCode {
    run_daemon(
        "cdktr-agent",
        config_file,
        args.flags(),
        args.detach,
        |cfg, shutdown, _reload| async move {
            if let Err(e) = crate::auth::Credential::optional(&cfg.agent.credential) {
                eprintln!("error: agent.credential: {e}");
                return ExitCode::FAILURE;
            }
            let principal = cfg.agent.principal.clone();
            let hooks = agent::Hooks {
                // Ready for systemd (and `--daemon`) once running: registering waits for the
                // principal however long it is away, and must not hold up a boot.
                started: move || {
                    runtime::systemd::ready();
                    runtime::systemd::status(&format!("registering with {principal}"));
                },
                registered: |id: &crate::model::AgentId, metrics: Option<std::net::SocketAddr>| {
                    let metrics = metrics.map_or("none".to_owned(), |m| m.to_string());
                    runtime::ready_line(format!("cdktr-agent ready id={id} metrics={metrics}"));
                    runtime::systemd::status(&format!("registered as {id}"));
                },
            };
            let ran = agent::run(cfg.agent, shutdown, hooks).await;
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    runtime::detach::failed(&e);
                    ExitCode::FAILURE
                }
            }
        },
    )
}
