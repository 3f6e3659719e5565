//! `cdktr init [DIR] [--force]`: a commented `cdktr.toml` and a `workflows/` tree with an example
//! of each task type, ready for `cdktr start principal --with-agent`. The files are the
//! repository's own examples and the package's configuration file (with local paths), so what
//! `init` writes is what the tests validate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The package's configuration file, with paths for a project directory.
const CONFIG: &str = include_str!("../../packaging/cdktr.toml");

/// (path under DIR, content) of every example file.
const WORKFLOWS: &[(&str, &str)] = &[
    (
        "workflows/hello.yml",
        include_str!("../../workflows/hello.yml"),
    ),
    (
        "workflows/etl/daily.yml",
        include_str!("../../workflows/etl/daily.yml"),
    ),
    (
        "workflows/python/uv_script.yml",
        include_str!("../../workflows/python/uv_script.yml"),
    ),
    (
        "workflows/python/stats.py",
        include_str!("../../workflows/python/stats.py"),
    ),
    (
        "workflows/examples/retries.yml",
        include_str!("../../workflows/examples/retries.yml"),
    ),
];

/// The configuration `init` writes: the package's, pointed at DIR's own folders.
fn config() -> String {
    CONFIG
        .replace(
            "workflow_dir = \"/etc/cdktr/workflows\"",
            "workflow_dir = \"workflows\"",
        )
        .replace(
            "data_dir = \"/var/lib/cdktr/agent\"",
            "data_dir = \".cdktr/agent\"",
        )
        .replace("data_dir = \"/var/lib/cdktr\"", "data_dir = \".cdktr\"")
        .replace(
            "control_socket = \"/run/cdktr/control.sock\"",
            "# control_socket = \".cdktr/control.sock\"",
        )
        .replace(
            "# cdktr's configuration, read by",
            "# cdktr's configuration (written by `cdktr init`), read by",
        )
}

pub fn run(dir: &Path, force: bool) -> anyhow::Result<ExitCode> {
    let config = config();
    let mut files: Vec<(PathBuf, &str)> = vec![(dir.join("cdktr.toml"), config.as_str())];
    files.extend(WORKFLOWS.iter().map(|(p, text)| (dir.join(p), *text)));
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() && !force {
        eprintln!(
            "error: these files exist and were left alone (nothing was written): {}; \
             --force overwrites them",
            existing.join(", ")
        );
        return Ok(ExitCode::from(2));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "next: cd {} && cdktr start principal --with-agent, then cdktr run hello --wait",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
