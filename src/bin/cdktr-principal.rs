//! `cdktr-principal`: the principal daemon (same as `cdktr start principal`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "cdktr-principal", version, about = "cdktr principal daemon")]
struct Args {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    principal: cdktr::daemon::PrincipalArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cdktr::daemon::principal_main(args.config, args.principal)
}
