//! `cdktr-agent`: the agent daemon (same as `cdktr start agent`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "cdktr-agent", version, about = "cdktr agent daemon")]
struct Args {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    agent: cdktr::daemon::AgentArgs,
}

cdktr::without_duckdb!();

fn main() -> ExitCode {
    let args = Args::parse();
    cdktr::daemon::agent_main(args.config, args.agent)
}
