//! Running one task as a child process: command line per task type, environment, output
//! streamed line by line on both streams at once, and termination on cancel.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::output::{read_lines, MAX_LINE_BYTES};
use super::reporter::RunRecorder;
use crate::model::{Task, TaskConfig, TaskStatus};
use crate::protocol::agent::Stream;

/// How long a task gets between SIGTERM and SIGKILL when its run is cancelled.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long output is still read after the task exited (a background child may hold it open).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: TaskStatus,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

impl Outcome {
    fn failed(reason: String) -> Self {
        Outcome {
            status: TaskStatus::Failed,
            exit_code: None,
            reason: Some(reason),
        }
    }
}

/// Builds the command for a task config; the second value names the program for messages.
fn command(config: &TaskConfig) -> (Command, String, Option<&Path>) {
    match config {
        TaskConfig::Subprocess {
            cmd,
            args,
            env,
            cwd,
        } => {
            let mut c = Command::new(cmd);
            c.args(args).envs(env);
            (c, cmd.clone(), cwd.as_deref())
        }
        TaskConfig::Shell {
            script,
            shell,
            env,
            cwd,
        } => {
            let shell = shell.clone().unwrap_or_else(|| "/bin/sh".into());
            let mut c = Command::new(&shell);
            c.arg("-c").arg(script).envs(env);
            (c, shell, cwd.as_deref())
        }
        TaskConfig::UvPython {
            script_path,
            packages,
            is_uv_project,
            working_directory,
            uv_path,
        } => {
            let uv = uv_path.clone().unwrap_or_else(|| "uv".into());
            let mut c = Command::new(&uv);
            c.arg("run");
            if !is_uv_project {
                c.arg("--no-project");
            }
            for p in packages {
                c.arg("--with").arg(p);
            }
            c.arg(script_path);
            (c, uv, working_directory.as_deref())
        }
    }
}

/// Runs `task` to completion (or until `cancel`), streaming its output to `recorder`.
pub async fn execute(
    task: &Task,
    env: &BTreeMap<String, String>,
    recorder: &RunRecorder,
    cancel: &CancellationToken,
) -> Outcome {
    let (mut cmd, program, cwd) = command(&task.config);
    let say =
        |message: String| recorder.line(&task.id, Stream::Stderr, format!("cdktr: {message}"));
    if let Some(dir) = cwd {
        if !dir.is_dir() {
            let reason = format!("working directory `{}` does not exist", dir.display());
            say(reason.clone());
            return Outcome::failed(reason);
        }
        cmd.current_dir(dir);
    }
    cmd.envs(env)
        .env("CDKTR_TASK_ID", task.id.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(mask) = crate::runtime::files::task_umask() {
        // SAFETY: the closure runs in the forked child before exec and calls only umask(2),
        // which is async-signal-safe; it allocates nothing and touches no lock.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::stat::umask(mask);
                Ok(())
            });
        }
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = match (&task.config, e.kind()) {
                (TaskConfig::UvPython { .. }, std::io::ErrorKind::NotFound) => format!(
                    "cannot start `{program}`: not found. Install uv (https://docs.astral.sh/uv/) \
                     on this agent or set `uv_path`"
                ),
                (_, std::io::ErrorKind::NotFound) => {
                    format!("cannot start `{program}`: not found ({e})")
                }
                _ => format!("cannot start `{program}`: {e}"),
            };
            say(reason.clone());
            return Outcome::failed(reason);
        }
    };
    let pid = child.id();
    let readers = {
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let (r1, r2) = (recorder.clone(), recorder.clone());
        let (t1, t2) = (task.id.clone(), task.id.clone());
        let out = tokio::spawn(async move {
            if let Some(s) = stdout {
                let _ = read_lines(s, MAX_LINE_BYTES, |l| r1.line(&t1, Stream::Stdout, l)).await;
            }
        });
        let err = tokio::spawn(async move {
            if let Some(s) = stderr {
                let _ = read_lines(s, MAX_LINE_BYTES, |l| r2.line(&t2, Stream::Stderr, l)).await;
            }
        });
        [out, err]
    };
    let (status, cancelled) = tokio::select! {
        s = child.wait() => (s, false),
        _ = cancel.cancelled() => {
            signal_group(pid, nix::sys::signal::Signal::SIGTERM);
            let s = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                    child.wait().await
                }
            };
            (s, true)
        }
    };
    for reader in readers {
        let abort = reader.abort_handle();
        if tokio::time::timeout(DRAIN_AFTER_EXIT, reader)
            .await
            .is_err()
        {
            abort.abort();
            say(
                "output still open after the task exited (a background process?); stopped reading"
                    .into(),
            );
        }
    }
    match status {
        Err(e) => Outcome::failed(format!("waiting for the task failed: {e}")),
        Ok(_) if cancelled => Outcome {
            status: TaskStatus::Cancelled,
            exit_code: None,
            reason: Some("cancelled: the agent is shutting down".into()),
        },
        Ok(s) => match (s.code(), s.signal()) {
            (Some(0), _) => Outcome {
                status: TaskStatus::Completed,
                exit_code: Some(0),
                reason: None,
            },
            (Some(code), _) => Outcome {
                status: TaskStatus::Failed,
                exit_code: Some(code),
                reason: Some(format!("exited with code {code}")),
            },
            (None, Some(sig)) => Outcome::failed(format!("killed by signal {sig}")),
            (None, None) => Outcome::failed("ended without an exit code".into()),
        },
    }
}

/// Signals the task's whole process group (it was started as a group leader).
fn signal_group(pid: Option<u32>, signal: nix::sys::signal::Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}
