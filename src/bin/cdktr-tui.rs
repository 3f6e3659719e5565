//! `cdktr-tui`: the terminal cockpit.

use std::process::ExitCode;

use clap::Parser;

cdktr::without_duckdb!();

fn main() -> ExitCode {
    let args = cdktr::tui::TuiCli::parse();
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
