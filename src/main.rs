//! `cdktr`: the command line.

use std::process::ExitCode;

use clap::Parser;

cdktr::without_duckdb!();

fn main() -> ExitCode {
    let cli = cdktr::cli::Cli::parse();
    cdktr::cli::run(cli).unwrap_or_else(|e| cdktr::cli::report(&e))
}
