//! `cdktr-tui`: the terminal cockpit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "cdktr-tui", version, about = "cdktr terminal cockpit")]
struct Args {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Principal to watch (client.principal).
    #[arg(long, value_name = "ENDPOINT")]
    principal: Option<String>,
}

cdktr::without_duckdb!();

fn main() -> ExitCode {
    let args = Args::parse();
    let flags = args
        .principal
        .map(|p| vec![("client.principal", p, "--principal".to_owned())])
        .unwrap_or_default();
    let result = cdktr::cli::resolve_config(args.config, flags).and_then(|resolved| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(cdktr::tui::run(&resolved.config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cdktr::cli::report(&e),
    }
}
