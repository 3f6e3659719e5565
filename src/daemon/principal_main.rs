//! `cdktr-principal`'s entry point and flags (the only part of `daemon` that reaches the store).

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::{flag, run_daemon, Flags};
use crate::{agent, principal, runtime};

/// `cdktr-principal`'s command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cdktr-principal",
    version,
    about = "cdktr principal daemon: loads workflows, schedules and queues runs, answers agents and clients, keeps the history in DuckDB",
    after_help = "Example: cdktr-principal --workflow-dir /etc/cdktr/workflows --data-dir /var/lib/cdktr --with-agent"
)]
pub struct PrincipalCli {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub principal: PrincipalArgs,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PrincipalArgs {
    /// API endpoint to bind (principal.listen); port 0 picks a free port.
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Option<String>,
    /// Live log stream endpoint to bind (principal.logs_publish).
    #[arg(long, value_name = "ENDPOINT")]
    pub logs_publish: Option<String>,
    /// Workflow directory (principal.workflow_dir).
    #[arg(long, value_name = "DIR")]
    pub workflow_dir: Option<PathBuf>,
    /// Data directory for the DuckDB file (principal.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Agent heartbeat timeout, e.g. 30s (principal.heartbeat_timeout).
    #[arg(long, value_name = "DURATION")]
    pub heartbeat_timeout: Option<String>,
    /// Also run an agent in this process, connected to this principal.
    #[arg(long)]
    pub with_agent: bool,
    /// Slots of the embedded agent (agent.max_concurrent_workflows).
    #[arg(long, value_name = "N")]
    pub max_concurrent_workflows: Option<String>,
    /// Serve Prometheus metrics on this loopback HOST:PORT (metrics.listen).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub detach: super::DetachArgs,
}

impl PrincipalArgs {
    fn flags(&self) -> Flags {
        let mut f = Vec::new();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        flag(&mut f, "principal.listen", self.listen.clone(), "listen");
        flag(
            &mut f,
            "principal.logs_publish",
            self.logs_publish.clone(),
            "logs-publish",
        );
        flag(
            &mut f,
            "principal.workflow_dir",
            path(&self.workflow_dir),
            "workflow-dir",
        );
        flag(
            &mut f,
            "principal.data_dir",
            path(&self.data_dir),
            "data-dir",
        );
        flag(
            &mut f,
            "principal.heartbeat_timeout",
            self.heartbeat_timeout.clone(),
            "heartbeat-timeout",
        );
        flag(
            &mut f,
            "agent.max_concurrent_workflows",
            self.max_concurrent_workflows.clone(),
            "max-concurrent-workflows",
        );
        flag(
            &mut f,
            "metrics.listen",
            self.metrics_listen.clone(),
            "metrics-listen",
        );
        f
    }
}

/// `cdktr-principal`.
pub fn principal_main(config_file: Option<PathBuf>, args: PrincipalArgs) -> ExitCode {
    // DuckDB creates files of its own (write-ahead log, spill files): private by umask. The
    // agent daemon creates every file with an explicit mode instead and keeps the umask it was
    // given, so its tasks inherit it and start through posix_spawn (no fork of the daemon).
    runtime::files::private_umask();
    let with_agent = args.with_agent;
    let flags = args.flags();
    run_daemon(
        "cdktr-principal",
        config_file,
        flags,
        args.detach,
        move |cfg, shutdown, reload| async move {
            // First: a second principal must not touch the first one's control socket or file.
            let _lock = match runtime::files::lock_data_dir(&cfg.principal.data_dir) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {e}");
                    runtime::detach::failed(&e);
                    return ExitCode::FAILURE;
                }
            };
            let (listen, publish) = (&cfg.principal.listen, &cfg.principal.logs_publish);
            let security = match principal::secure(&cfg.auth, &[listen, publish]) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let bound =
                principal::bind(&cfg.principal, security.as_ref(), &cfg.metrics.listen).await;
            let sockets = match bound {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // The embedded agent registers through the control socket: no credential needed.
            let api = match &sockets.local {
                Some(local) => local.api_endpoint.clone(),
                None => sockets.api_endpoint.clone(),
            };
            // Shutdown order: the embedded agent drains and reports first, then the principal stops.
            let principal_stop = CancellationToken::new();
            let agent_task = with_agent.then(|| {
                let mut agent_cfg = cfg.agent.clone();
                agent_cfg.principal = api.clone();
                // The principal's own endpoint serves the embedded agent's figures too.
                agent_cfg.metrics_listen.clear();
                let agent_stop = CancellationToken::new();
                let agent = {
                    let agent_stop = agent_stop.clone();
                    tokio::spawn(async move {
                        let hooks = agent::Hooks {
                            started: || {},
                            registered: |id: &crate::model::AgentId, _| {
                                runtime::ready_line(format!("cdktr-agent ready id={id}"))
                            },
                        };
                        let ran = agent::run(agent_cfg, agent_stop, hooks).await;
                        if let Err(e) = ran {
                            tracing::error!(error = %e, "the embedded agent stopped");
                        }
                    })
                };
                (agent, agent_stop)
            });
            {
                let principal_stop = principal_stop.clone();
                tokio::spawn(async move {
                    shutdown.cancelled().await;
                    if let Some((agent, agent_stop)) = agent_task {
                        agent_stop.cancel();
                        let _ = agent.await;
                    }
                    principal_stop.cancel();
                });
            }
            let result = principal::run(
                cfg.principal.clone(),
                cfg.retention.clone(),
                sockets,
                principal_stop,
                reload,
                |ready| {
                    runtime::ready_line(format!(
                        "cdktr-principal ready api={} logs_publish={} control={} workflows={} metrics={}",
                        ready.api,
                        ready.logs_publish,
                        ready.control.as_deref().unwrap_or("none"),
                        ready.workflows,
                        ready.metrics.as_deref().unwrap_or("none"),
                    ));
                    runtime::systemd::ready();
                    runtime::systemd::status(&format!("serving {} workflows", ready.workflows));
                    runtime::memory::release_when_idle(ready.store_progress.clone());
                },
            )
            .await;
            match result {
                Ok(()) => {
                    tracing::info!("stopped cleanly");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        },
    )
}
