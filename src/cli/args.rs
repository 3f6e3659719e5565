//! The command line's structure: every command, subcommand and flag (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::model::RunStatus;

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
    /// Run again what an ended run ran: its definition and parameters, linked to it.
    ///
    /// Example: cdktr rerun 01JD8X... --failed-only --param day=mon --wait
    Rerun {
        /// The run to repeat.
        run: String,
        /// Reuse the tasks that completed in it; run only the failed and skipped ones.
        #[arg(long)]
        failed_only: bool,
        /// Use the workflow file's current definition, not the one the run used.
        #[arg(long)]
        latest: bool,
        /// Override one of its parameters, KEY=VALUE (repeatable).
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Watch the new run until it ends; exit 0 if it COMPLETED, 1 otherwise.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Arm a fault injection point on a principal started with CDKTR_FAILPOINTS=1 (for tests
    /// of a deployment: `store_wedge` stops the store's writer, and systemd's watchdog should
    /// restart the principal).
    ///
    /// Example: cdktr failpoint store_wedge --for 60s
    #[command(hide = true)]
    Failpoint {
        name: String,
        /// How long it lasts, e.g. 30s.
        #[arg(long = "for", value_name = "DURATION", default_value = "10s")]
        duration: String,
    },
    /// Why a run is where it is: what a queued run waits for, where a running one runs.
    ///
    /// Example: cdktr explain 01JD8X...
    Explain {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run: a queued one leaves the queue, a running one's tasks are stopped.
    ///
    /// Example: cdktr cancel 01JD8X... --reason "wrong input file"
    Cancel {
        /// The run to cancel.
        run: String,
        /// Why, recorded with the run and in the audit log.
        #[arg(long)]
        reason: Option<String>,
        /// Return once the principal took the cancel, without waiting for the run to end.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
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
    /// Who the principal takes this client for: its credential's name and role.
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Client credentials for an authenticated principal (CURVE keys, one per client).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit log: who triggered, paused, resumed, reloaded, and key changes; newest first.
    Audit {
        /// Only entries since then: a duration ago (`1h`, `7d`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only this actor's entries (a credential's name, `local:USER`, `keys-file`).
        #[arg(long)]
        actor: Option<String>,
        /// Only this action (trigger, pause, resume, reload, key_added, key_removed, ...).
        #[arg(long)]
        action: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
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
        /// File holding the shared token callers must send (Authorization: Bearer <token>);
        /// or set CDKTR_WEBHOOK_TOKEN. Never on the command line, where `ps` shows it.
        #[arg(long, value_name = "FILE", conflicts_with = "no_auth")]
        token_file: Option<PathBuf>,
        /// Refused: a token on the command line is visible to every local user.
        #[arg(long, hide = true)]
        token: Option<String>,
        /// Accept requests without a token (only sensible on a trusted loopback).
        #[arg(long)]
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
    /// The principal: runs `cdktr-principal` with the flags that follow (see its --help).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Principal {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FLAGS"
        )]
        flags: Vec<std::ffi::OsString>,
    },
    /// An agent: runs `cdktr-agent` with the flags that follow (see its --help).
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Agent {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FLAGS"
        )]
        flags: Vec<std::ffi::OsString>,
    },
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
    /// Only this try of the task (1 is its first run; needs --task).
    #[arg(long = "try", value_name = "K", requires = "task", value_parser = clap::value_parser!(u32).range(1..))]
    pub try_no: Option<u32>,
    /// After the history, keep printing live output until the run ends.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line: run_id, task_id, try, stream, seq, ts, line.
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
pub enum KeysCommand {
    /// Create a credential: writes it to FILE (0600, with the principal's public key) and
    /// adds the client to the keys file named by `[auth] keys` (or prints the line to add).
    New {
        /// The client's name: an agent's credential names its agent (`web1` acts for
        /// `web1@HOST`).
        name: String,
        #[arg(long)]
        role: crate::model::Role,
        /// Where to write the credential (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Create the principal's key pair (`[auth] principal_key`) if it does not exist, and
    /// print its public key. The package runs it once, as the service user.
    ///
    /// Example: runuser -u cdktr -- cdktr keys init
    Init {
        #[arg(long)]
        json: bool,
    },
    /// The clients in the keys file.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a client: its requests are refused from the next one on.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Agents with their state, capacity and last heartbeat.
    List {
        #[arg(long)]
        json: bool,
    },
}
