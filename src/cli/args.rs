//! The command line's structure: every command, subcommand and flag (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use super::subcommands::*;

use crate::model::RunStatus;

#[derive(Debug, Parser)]
#[command(
    name = "cdktr",
    version,
    about = "cdktr: a distributed workflow orchestrator",
    after_help = "Example: cdktr run etl.daily --wait    (every command: cdktr COMMAND --help)"
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
    ///
    /// Example: cdktr config --sources
    Config {
        /// Say where each value came from (default, file, env or flag).
        #[arg(long)]
        sources: bool,
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// Validate, list and inspect workflow definitions.
    ///
    /// Example: cdktr workflow validate /etc/cdktr/workflows
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Start a daemon in the foreground.
    ///
    /// Example: cdktr start principal --with-agent
    #[command(subcommand)]
    Start(StartCommand),
    /// Trigger a run of a workflow.
    ///
    /// Example: cdktr run etl.daily --param day=mon --wait
    Run(RunArgs),
    /// Tasks (`cdktr task run W` is `cdktr run W`).
    ///
    /// Example: cdktr task run etl.daily --wait
    #[command(subcommand)]
    Task(TaskCommand),
    /// Run history.
    ///
    /// Example: cdktr runs list --workflow etl.daily --status FAILED
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
        /// With --wait: print the run's output as it comes.
        #[arg(long, requires = "wait")]
        logs: bool,
        #[arg(long)]
        json: bool,
    },
    /// Read-only SQL over the run history: views runs, task_runs, task_tries, transitions,
    /// logs, schedule_slots, agents and audit (see the README, "Querying history").
    ///
    /// The principal answers it within its row and time limits (principal.query_max_rows,
    /// principal.query_timeout) and refuses anything that is not a SELECT. With --offline it
    /// reads a database file itself: a copy, or a stopped principal's file.
    ///
    /// Example: cdktr query "SELECT workflow_id, count(*) AS runs FROM runs GROUP BY 1" --csv
    Query {
        /// One SQL SELECT statement.
        sql: String,
        #[command(flatten)]
        out: OutputArgs,
        /// Lower row limit for this query (the principal's applies when lower).
        #[arg(long, value_name = "N")]
        max_rows: Option<u32>,
        /// Lower time limit for this query, e.g. 2s (the principal's applies when lower).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Read the database file directly, without a principal.
        #[arg(long)]
        offline: bool,
        /// The database file for --offline (default: principal.db_path).
        #[arg(long, value_name = "FILE", requires = "offline")]
        db: Option<PathBuf>,
    },
    /// Per workflow: runs, success rate, p50/p95 duration, last failure with its reason, and
    /// the trend against the period before.
    ///
    /// Example: cdktr report --since 7d --workflow etl.daily
    Report {
        /// The period: a duration ago (7d, 24h) or an RFC 3339 time; compared with the period
        /// of the same length before it.
        #[arg(long, default_value = "7d")]
        since: String,
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Apply the [retention] settings now and report what was removed.
    ///
    /// The principal removes ended runs (with their tasks and output) older than
    /// retention.max_age or beyond retention.max_runs_per_workflow, trims output to
    /// retention.max_log_bytes, and checkpoints so DuckDB reuses the space. DuckDB shrinks a
    /// file only by copying it: --compact does that, with the principal stopped.
    ///
    /// Example: cdktr gc --dry-run
    Gc {
        /// Count what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also copy the database into a new, compact file (the principal must be stopped:
        /// this opens the file itself, see --db).
        #[arg(long)]
        compact: bool,
        /// The database file for --compact (default: principal.db_path).
        #[arg(long, value_name = "FILE", requires = "compact")]
        db: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Write a commented cdktr.toml and a workflows/ folder with an example of each task type
    /// (never overwriting a file without --force).
    ///
    /// Example: cdktr init my-project
    Init {
        /// The folder to write into (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Print a completion script for a shell.
    ///
    /// Example: cdktr completions bash > /etc/bash_completion.d/cdktr
    Completions { shell: clap_complete::Shell },
    /// Write man pages for cdktr, each of its commands and the daemons into a directory.
    ///
    /// Example: cdktr man --out /usr/local/share/man/man1
    Man {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
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
    ///
    /// Example: cdktr logs 01JD8X... --task extract --follow
    Logs(LogsArgs),
    /// Agents known to the principal.
    ///
    /// Example: cdktr agents list --json
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Schedules: list, pause and resume, explain the next fires, slot history.
    ///
    /// Example: cdktr schedule pause etl.daily
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Event listeners that trigger runs: an HTTP webhook, file arrival.
    ///
    /// Example: cdktr listen webhook --bind 127.0.0.1:8080 --token-file /etc/cdktr/webhook.token
    #[command(subcommand)]
    Listen(ListenCommand),
    /// Who the principal takes this client for: its credential's name and role.
    ///
    /// Example: cdktr whoami --principal tcp://10.0.0.5:5561
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Client credentials for an authenticated principal (CURVE keys, one per client).
    ///
    /// Example: cdktr keys new web1 --role agent --out web1.credential
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit log: who triggered, paused, resumed, reloaded, and key changes; newest first.
    ///
    /// Example: cdktr audit --since 1d --action trigger
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
        #[command(flatten)]
        out: OutputArgs,
    },
    /// The principal's health: version, uptime, workflows, queue, agents, store.
    ///
    /// Example: cdktr status --json
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workflow id, e.g. etl.daily.
    pub workflow: String,
    /// Watch the run's tasks until it ends (a live table on a terminal, a line per change
    /// otherwise); exit 0 if it COMPLETED, 1 otherwise.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: print the run's output (stdout, `!|` for stderr) as it comes.
    #[arg(long, requires = "wait")]
    pub logs: bool,
    /// Run parameter KEY=VALUE, passed to tasks as CDKTR_PARAM_KEY (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Trigger a run of a workflow (same as `cdktr run`).
    ///
    /// Example: cdktr task run etl.daily --wait
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs, newest first.
    ///
    /// Example: cdktr runs list --status FAILED --limit 20
    List {
        #[arg(long)]
        workflow: Option<String>,
        /// QUEUED, RUNNING, COMPLETED, FAILED, CRASHED or CANCELLED.
        #[arg(long)]
        status: Option<RunStatus>,
        /// What queued them: cli, tui, api, schedule, retry, rerun, event:NAME (event: any).
        #[arg(long)]
        trigger: Option<String>,
        /// The agent that ran them: an id (web1@host) or a name (web1).
        #[arg(long)]
        agent: Option<String>,
        /// Queued since: a duration ago (30m, 7d) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Queued until: a duration ago or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// At most this many, newest first (up to 10000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// One run and its tasks.
    ///
    /// Example: cdktr runs show 01JD8X...
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
    #[command(flatten)]
    pub lines: LineArgs,
    /// One JSON object per line: run_id, task_id, try, stream, seq, ts, line.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<LogsCommand>,
}

/// Which lines to print.
#[derive(Debug, Clone, Default, Args)]
pub struct LineArgs {
    /// Only this stream's lines.
    #[arg(long, value_parser = ["stdout", "stderr"])]
    pub stream: Option<String>,
    /// Only lines matching this regular expression (RE2 syntax, e.g. 'ERROR|WARN').
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// Only lines printed since then: a duration ago (30m, 1h) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only lines printed until then: a duration ago or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Stored output across runs.
    ///
    /// Example: cdktr logs query --workflow etl.daily --since 1h
    Query {
        #[arg(long)]
        workflow: Option<String>,
        /// After the stored lines, keep printing new ones as they come (until interrupted).
        #[arg(long, conflicts_with = "until")]
        follow: bool,
        #[command(flatten)]
        lines: LineArgs,
        #[arg(long)]
        json: bool,
    },
    /// Live output of every run (or one workflow's) until interrupted.
    ///
    /// Example: cdktr logs tail --workflow etl.daily
    Tail {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        json: bool,
    },
}
