//! `cdktr-agent`: the agent daemon (same as `cdktr start agent`).

use std::process::ExitCode;

use clap::Parser;

cdktr::without_duckdb!();

fn main() -> ExitCode {
    let args = cdktr::daemon::AgentCli::parse();
    cdktr::daemon::agent_main(args.config, args.agent)
}
