//! `cdktr completions SHELL` and `cdktr man --out DIR`: generated from the clap definitions of
//! `cdktr` and of the three other binaries, so they never disagree with `--help`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;
use crate::daemon::{AgentCli, PrincipalCli};
use crate::tui::TuiCli;

/// Prints the completion script of `cdktr` for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    // Generated into memory first: clap_complete panics when its writer fails (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cdktr", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the man pages of `cdktr` (one per command) and of the three other binaries.
pub fn man_pages(out: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let commands = [
        Cli::command(),
        TuiCli::command(),
        PrincipalCli::command(),
        AgentCli::command(),
    ];
    for cmd in commands {
        clap_mangen::generate_to(cmd, out)
            .map_err(|e| anyhow::anyhow!("cannot write man pages to {}: {e}", out.display()))?;
    }
    let written = std::fs::read_dir(out)?.count();
    println!("{written} man pages in {}", out.display());
    Ok(ExitCode::SUCCESS)
}
