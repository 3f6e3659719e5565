//! `cdktr-principal`: the principal daemon (same as `cdktr start principal`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `cdktr query --offline` and `cdktr gc --compact` run here: this binary has DuckDB.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == cdktr::cli::OFFLINE)
    {
        let args = std::env::args_os().skip(2);
        let cli = cdktr::cli::Cli::parse_from(std::iter::once("cdktr".into()).chain(args));
        return cdktr::cli::run_with_store(cli).unwrap_or_else(|e| cdktr::cli::report(&e));
    }
    let args = cdktr::daemon::PrincipalCli::parse();
    cdktr::daemon::principal_main(args.config, args.principal)
}
