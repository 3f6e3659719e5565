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

pub use principal_main::{principal_main, PrincipalArgs};

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
        f
    }
}

fn resolve(config_file: Option<PathBuf>, flags: Flags) -> Result<config::Resolved, ExitCode> {
    let mut inputs = Inputs::from_process(config_file);
    inputs.flags = flags;
    match config::resolve(&inputs) {
        Ok(r) => {
            for w in &r.warnings {
                tracing::warn!("{w}");
            }
            Ok(r)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
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

/// Shared set-up of both daemons: logging, configuration, runtime, signal handling; then
/// `body` with the resolved configuration, the shutdown token and the reload signal.
pub(crate) fn run_daemon<F, Fut>(config_file: Option<PathBuf>, flags: Flags, body: F) -> ExitCode
where
    F: FnOnce(config::Config, CancellationToken, Arc<Notify>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    runtime::init_logging();
    let resolved = match resolve(config_file, flags) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let reload = Arc::new(Notify::new());
        if let Err(e) = runtime::handle_signals(shutdown.clone(), reload.clone()) {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
        let code = body(resolved.config, shutdown, reload).await;
        runtime::notify_stopping();
        code
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// `cdktr-agent`.
pub fn agent_main(config_file: Option<PathBuf>, args: AgentArgs) -> ExitCode {
    run_daemon(
        config_file,
        args.flags(),
        |cfg, shutdown, _reload| async move {
            if let Err(e) = crate::auth::Credential::optional(&cfg.agent.credential) {
                eprintln!("error: agent.credential: {e}");
                return ExitCode::FAILURE;
            }
            agent::run(cfg.agent, shutdown, |id| {
                runtime::ready_line(format!("cdktr-agent ready id={id}"));
                runtime::notify_ready();
            })
            .await;
            ExitCode::SUCCESS
        },
    )
}
