//! The `cdktr` command line: argument structure, dispatch and exit codes.
//!
//! Exit codes: 0 success; 1 the command ran and found a failure (invalid workflows, a failed
//! run); 2 bad usage or configuration; 3 the principal cannot be reached.

mod config_cmd;
mod output;
mod workflow_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Inputs, Resolved};

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
    /// List workflows with their schedules and next fire times.
    List {
        /// Workflow directory (default: the configured one).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let resolved = resolve_config(cli.config.clone(), Vec::new())?;
    match cli.command {
        Command::Config { sources, json } => config_cmd::print(&resolved, sources, json),
        Command::Workflow(cmd) => workflow_cmd::run(cmd, &resolved.config),
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
    ExitCode::from(2)
}
