//! Shared harness: a temp workspace and a way to run the real `cdktr` binary in it.

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory the CLI runs in, with an empty `cdktr.toml` so that no config file of
/// the machine (such as /etc/cdktr/cdktr.toml) leaks into a test.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cdktr.toml"), "").expect("write cdktr.toml");
        Workspace { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `relative`, creating parent directories.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dirs");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// A `cdktr` command running in the workspace with no `CDKTR_*` variables inherited.
    pub fn cdktr(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdktr"));
        cmd.current_dir(self.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("CDKTR_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.cdktr().args(args).output().expect("run cdktr");
        Run::from(output)
    }
}

/// A finished command: exit code and decoded output.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A one-task workflow that is valid.
pub fn valid_workflow(name: &str) -> String {
    format!("name: {name}\ntasks:\n  a:\n    name: A\n    config: !Shell\n      script: echo hi\n")
}
