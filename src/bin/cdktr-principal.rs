//! `cdktr-principal`: the principal daemon (same as `cdktr start principal`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cdktr::daemon::PrincipalCli::parse();
    cdktr::daemon::principal_main(args.config, args.principal)
}
