//! The command families with subcommands of their own that manage the system rather than runs
//! (workflows, schedules, listeners, keys, agents, daemons); `args.rs` holds the rest.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Check workflow files and report every problem as file:line:col.
    ///
    /// Example: cdktr workflow validate workflows/etl/daily.yml
    Validate {
        /// Files or directories (default: the configured workflow directory).
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List workflows with their schedules and next fire times (from the principal when it is
    /// reachable and no --dir is given, else from the files).
    ///
    /// Example: cdktr workflow list --json
    List {
        /// Read this workflow directory instead of asking the principal.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Make the principal re-read the workflow directory now (it also watches it).
    ///
    /// Example: cdktr workflow reload
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Show one workflow: schedule, next fire times and tasks in execution order.
    ///
    /// Example: cdktr workflow show etl.daily
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
    ///
    /// Example: cdktr schedule list
    List {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Pause a workflow's schedule (persisted across principal restarts).
    ///
    /// Example: cdktr schedule pause etl.daily
    Pause {
        workflow: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused schedule.
    ///
    /// Example: cdktr schedule resume etl.daily
    Resume {
        workflow: String,
        #[arg(long)]
        json: bool,
    },
    /// The next fire times in the workflow's zone and in UTC, with DST changes marked.
    ///
    /// Example: cdktr schedule explain etl.daily --count 5
    Explain {
        workflow: String,
        #[arg(long, default_value_t = 10)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
    /// What happened to each slot: fired, skipped-overlap, missed, caught-up, paused.
    ///
    /// Example: cdktr schedule history etl.daily
    History {
        workflow: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListenCommand {
    /// HTTP: `POST /trigger/<workflow>` with a JSON object of parameters queues a run.
    ///
    /// Example: cdktr listen webhook --bind 127.0.0.1:8080 --token-file /etc/cdktr/webhook.token
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
    ///
    /// Example: cdktr listen files --dir /srv/incoming --pattern '*.csv' --workflow etl.load
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
pub enum KeysCommand {
    /// Create a credential: writes it to FILE (0600, with the principal's public key) and
    /// adds the client to the keys file named by `[auth] keys` (or prints the line to add).
    ///
    /// Example: cdktr keys new web1 --role agent --out web1.credential
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
    /// Example: cdktr keys init    (the package runs it as the service user: runuser -u cdktr)
    Init {
        #[arg(long)]
        json: bool,
    },
    /// The clients in the keys file.
    ///
    /// Example: cdktr keys list
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a client: its requests are refused from the next one on.
    ///
    /// Example: cdktr keys revoke web1
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Agents with their state, capacity and last heartbeat.
    ///
    /// Example: cdktr agents list
    List {
        #[command(flatten)]
        out: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum StartCommand {
    /// The principal: runs `cdktr-principal` with the flags that follow (see its --help).
    ///
    /// Example: cdktr start principal --workflow-dir workflows --with-agent
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
    ///
    /// Example: cdktr start agent --principal tcp://10.0.0.5:5561 --name web1
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

/// How a listing is printed: a table (the default), JSON or CSV.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Print JSON (as --output json).
    #[arg(long, conflicts_with_all = ["output", "csv"])]
    pub json: bool,
    /// Print CSV with a header row (as --output csv).
    #[arg(long, conflicts_with = "output")]
    pub csv: bool,
    /// table, json or csv.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

impl OutputArgs {
    pub fn format(&self) -> OutputFormat {
        match (self.json, self.csv, self.output) {
            (true, _, _) => OutputFormat::Json,
            (_, true, _) => OutputFormat::Csv,
            (_, _, Some(format)) => format,
            _ => OutputFormat::Table,
        }
    }
}
