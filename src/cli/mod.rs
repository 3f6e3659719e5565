//! The `cdktr` command line: argument structure, dispatch and exit codes.
//!
//! Exit codes: 0 success; 1 the command ran and found a failure (invalid workflows, a failed
//! run); 2 bad usage or configuration; 3 the principal cannot be reached.

mod agents_cmd;
mod config_cmd;
pub mod format;
mod listen_cmd;
mod logs_cmd;
mod output;
mod remote;
mod run_cmd;
mod runs_cmd;
mod schedule_cmd;
mod workflow_cmd;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Inputs, Resolved};
use crate::daemon::{AgentArgs, PrincipalArgs};
use crate::model::RunStatus;
use crate::transport::ClientError;
use remote::Remote;

#[derive(Debug, Parser)]
#[command(
    name = "cdktr",
    version,
    about = "cdktr: a distributed workflow orchestrator"
)]
pub struct Cli {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Principal to talk to (client.principal), e.g. tcp://10.0.0.5:5561.
    #[arg(long, global = true, value_name = "ENDPOINT")]
    pub principal: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the resolved configuration as TOML.
    Config {
        /// Say where each value came from (default, file, env or flag).
        #[arg(long)]
        sources: bool,
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Validate, list and inspect workflow definitions.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Start a daemon in the foreground.
    #[command(subcommand)]
    Start(StartCommand),
    /// Trigger a run of a workflow.
    Run(RunArgs),
    /// Tasks (`cdktr task run W` is `cdktr run W`).
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run history.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Task output: a run's logs, queries across runs, the live tail.
    Logs(LogsArgs),
    /// Agents known to the principal.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Schedules: list, pause and resume, explain the next fires, slot history.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Event listeners that trigger runs: an HTTP webhook, file arrival.
    #[command(subcommand)]
    Listen(ListenCommand),
    /// The principal's health: version, uptime, workflows, queue, agents, store.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check workflow files and report every problem as file:line:col.
    Validate {
        /// Files or directories (default: the configured workflow directory).
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List workflows with their schedules and next fire times (from the principal when it is
    /// reachable and no --dir is given, else from the files).
    List {
        /// Read this workflow directory instead of asking the principal.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Make the principal re-read the workflow directory now (it also watches it).
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Show one workflow: schedule, next fire times and tasks in execution order.
    Show {
        id: String,
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Scheduled workflows: cron, zone, next fire, paused, policies.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Pause a workflow's schedule (persisted across principal restarts).
    Pause {
        workflow: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused schedule.
    Resume {
        workflow: String,
        #[arg(long)]
        json: bool,
    },
    /// The next fire times in the workflow's zone and in UTC, with DST changes marked.
    Explain {
        workflow: String,
        #[arg(long, default_value_t = 10)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
    /// What happened to each slot: fired, skipped-overlap, missed, caught-up, paused.
    History {
        workflow: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListenCommand {
    /// HTTP: `POST /trigger/<workflow>` with a JSON object of parameters queues a run.
    Webhook {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: String,
        /// Shared token callers must send (Authorization: Bearer <token>).
        #[arg(long, env = "CDKTR_WEBHOOK_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Accept requests without a token (only sensible on a trusted loopback).
        #[arg(long, conflicts_with = "token")]
        no_auth: bool,
    },
    /// A file arriving in a directory (created or moved in) triggers a workflow.
    Files {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Glob on the file name, e.g. '*.csv'.
        #[arg(long, default_value = "*")]
        pattern: String,
        #[arg(long)]
        workflow: String,
        /// The parameter that receives the file's absolute path (declare it in the workflow).
        #[arg(long, default_value = "file")]
        param: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// The principal (same as `cdktr-principal`).
    Principal(PrincipalArgs),
    /// An agent (same as `cdktr-agent`).
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workflow id, e.g. etl.daily.
    pub workflow: String,
    /// Watch the run's tasks until it ends; exit 0 if it COMPLETED, 1 otherwise.
    #[arg(long)]
    pub wait: bool,
    /// Run parameter KEY=VALUE, passed to tasks as CDKTR_PARAM_KEY (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Trigger a run of a workflow (same as `cdktr run`).
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    List {
        #[arg(long)]
        workflow: Option<String>,
        /// QUEUED, RUNNING, COMPLETED, FAILED, CRASHED or CANCELLED.
        #[arg(long)]
        status: Option<RunStatus>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// One run and its tasks.
    Show {
        run: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LogsArgs {
    /// The run whose output to print.
    #[arg(required = true)]
    pub run: Option<String>,
    /// Only this task's output.
    #[arg(long)]
    pub task: Option<String>,
    /// After the history, keep printing live output until the run ends.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line: run_id, task_id, stream, seq, ts, line.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<LogsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Stored output across runs.
    Query {
        #[arg(long)]
        workflow: Option<String>,
        /// A duration ago (30m, 1h) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// A duration ago or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Live output of every run (or one workflow's) until interrupted.
    Tail {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Agents with their state, capacity and last heartbeat.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut flags = Vec::new();
    if let Some(p) = &cli.principal {
        flags.push(("client.principal", p.clone(), "--principal".to_owned()));
    }
    match cli.command {
        Command::Start(StartCommand::Principal(args)) => {
            return Ok(crate::daemon::principal_main(cli.config, args))
        }
        Command::Start(StartCommand::Agent(args)) => {
            return Ok(crate::daemon::agent_main(cli.config, args))
        }
        _ => {}
    }
    let resolved = resolve_config(cli.config.clone(), flags)?;
    match cli.command {
        Command::Config { sources, json } => config_cmd::print(&resolved, sources, json),
        Command::Workflow(WorkflowCommand::Reload { json }) => {
            let config = resolved.config.clone();
            with_runtime(move || async move {
                let remote = Remote::connect(&config);
                let reply = remote
                    .ask(crate::protocol::control::ControlRequest::ReloadWorkflows)
                    .await?;
                let crate::protocol::control::ControlReply::Reloaded { valid, invalid } = reply
                else {
                    anyhow::bail!("unexpected reply to a reload");
                };
                if json {
                    output::print_json(&serde_json::json!({ "valid": valid, "invalid": invalid }))?;
                } else {
                    use std::io::Write;
                    writeln!(
                        std::io::stdout().lock(),
                        "reloaded: {valid} workflows active, {invalid} invalid files"
                    )?;
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Listen(cmd) => listen_cmd::run(cmd, &resolved.config),
        Command::Schedule(ScheduleCommand::Explain {
            workflow,
            count,
            json,
        }) => {
            let config = resolved.config.clone();
            with_runtime(move || async move {
                schedule_cmd::explain(&config, workflow, count, json).await
            })
        }
        Command::Workflow(cmd) => {
            let config = resolved.config.clone();
            with_runtime(move || async move { workflow_cmd::run(cmd, &config).await })
        }
        other => {
            let config = resolved.config.clone();
            with_runtime(move || async move { remote_command(other, &config).await })
        }
    }
}

fn with_runtime<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f())
}

fn parse_params(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => anyhow::bail!("--param `{p}`: expected KEY=VALUE"),
        })
        .collect()
}

async fn remote_command(command: Command, config: &config::Config) -> anyhow::Result<ExitCode> {
    let remote = Remote::connect(config);
    match command {
        Command::Run(args) | Command::Task(TaskCommand::Run(args)) => {
            let params = parse_params(&args.params)?;
            run_cmd::run(&remote, args.workflow, params, args.wait, args.json).await
        }
        Command::Runs(RunsCommand::List {
            workflow,
            status,
            limit,
            json,
        }) => runs_cmd::list(&remote, workflow, status, limit, json).await,
        Command::Runs(RunsCommand::Show { run, json }) => runs_cmd::show(&remote, &run, json).await,
        Command::Logs(LogsArgs {
            command:
                Some(LogsCommand::Query {
                    workflow,
                    since,
                    until,
                    json,
                }),
            ..
        }) => {
            let since = since
                .map(|s| logs_cmd::parse_instant(&s, "--since"))
                .transpose()?;
            let until = until
                .map(|s| logs_cmd::parse_instant(&s, "--until"))
                .transpose()?;
            logs_cmd::query(&remote, workflow, since, until, json).await
        }
        Command::Logs(LogsArgs {
            command: Some(LogsCommand::Tail { workflow, json }),
            ..
        }) => logs_cmd::tail(&remote, workflow, json).await,
        Command::Logs(LogsArgs {
            run: Some(run),
            task,
            follow,
            json,
            command: None,
        }) => logs_cmd::run_logs(&remote, &run, task, follow, json).await,
        Command::Logs(_) => {
            anyhow::bail!("name a run: cdktr logs RUN (or `logs query`, `logs tail`)")
        }
        Command::Agents(AgentsCommand::List { json }) => agents_cmd::list(&remote, json).await,
        Command::Status { json } => agents_cmd::status(&remote, json).await,
        Command::Schedule(ScheduleCommand::List { json }) => {
            schedule_cmd::list(&remote, json).await
        }
        Command::Schedule(ScheduleCommand::Pause { workflow, json }) => {
            schedule_cmd::set_paused(&remote, workflow, true, json).await
        }
        Command::Schedule(ScheduleCommand::Resume { workflow, json }) => {
            schedule_cmd::set_paused(&remote, workflow, false, json).await
        }
        Command::Schedule(ScheduleCommand::History {
            workflow,
            limit,
            json,
        }) => schedule_cmd::history(&remote, workflow, limit, json).await,
        Command::Config { .. }
        | Command::Workflow(_)
        | Command::Start(_)
        | Command::Listen(_)
        | Command::Schedule(ScheduleCommand::Explain { .. }) => {
            anyhow::bail!("internal error: this command does not talk to the principal")
        }
    }
}

/// Resolves configuration for this process and prints its warnings to stderr.
pub fn resolve_config(
    file: Option<PathBuf>,
    flags: Vec<(&'static str, String, String)>,
) -> anyhow::Result<Resolved> {
    let mut inputs = Inputs::from_process(file);
    inputs.flags = flags;
    let resolved = config::resolve(&inputs)?;
    for warning in &resolved.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(resolved)
}

/// Maps an error chain to an exit code and prints it; a closed stdout (`| head`) is success.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {err:#}");
    let unreachable = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<ClientError>(),
            Some(ClientError::Unreachable { .. })
        )
    });
    if unreachable {
        ExitCode::from(3)
    } else {
        ExitCode::from(2)
    }
}
