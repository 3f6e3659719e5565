//! Running one try of a task as a child process: command line per task type, environment,
//! output streamed line by line on both streams at once, and termination of its whole process
//! group on a stop (cancel, shutdown, the workflow's timeout) or at the task's own timeout:
//! SIGTERM, then SIGKILL for whatever is left of the group after the grace period.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::output::{read_lines, MAX_LINE_BYTES};
use super::reporter::RunRecorder;
use super::stop::RunStop;
use crate::model::{Span, Task, TaskConfig, TaskStatus};
use crate::protocol::agent::Stream;

/// How often a stopping task's process group is checked for survivors.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// The variables a task starts with besides its config's `env`.
#[derive(Clone, Debug, Default)]
pub struct TaskEnv {
    /// false: only PATH, HOME and LANG of the agent's environment are passed on.
    pub inherit: bool,
    /// The workflow's and the task's `env`.
    pub vars: BTreeMap<String, String>,
    /// The run's `CDKTR_*` variables (they win over everything).
    pub run: BTreeMap<String, String>,
}

/// What bounds one try.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: Option<Span>,
    /// From SIGTERM to SIGKILL.
    pub kill_grace: Duration,
}

/// The variables kept from the agent's environment when a task does not inherit it.
const MINIMAL_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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

/// A task's command, the program's name for messages, its working directory and its
/// config's `env`.
struct Prepared<'a> {
    cmd: Command,
    program: String,
    cwd: Option<&'a Path>,
    env: Option<&'a BTreeMap<String, String>>,
}

/// Builds the command for a task config (its environment is set by the caller).
fn command(config: &TaskConfig) -> Prepared<'_> {
    match config {
        TaskConfig::Subprocess {
            cmd,
            args,
            env,
            cwd,
        } => {
            let mut c = Command::new(cmd);
            c.args(args);
            Prepared {
                cmd: c,
                program: cmd.clone(),
                cwd: cwd.as_deref(),
                env: Some(env),
            }
        }
        TaskConfig::Shell {
            script,
            shell,
            env,
            cwd,
        } => {
            let shell = shell.clone().unwrap_or_else(|| "/bin/sh".into());
            let mut c = Command::new(&shell);
            c.arg("-c").arg(script);
            Prepared {
                cmd: c,
                program: shell,
                cwd: cwd.as_deref(),
                env: Some(env),
            }
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
            Prepared {
                cmd: c,
                program: uv,
                cwd: working_directory.as_deref(),
                env: None,
            }
        }
    }
}

/// Runs one try of `task` to its end, its timeout, or `stop`, streaming its output to
/// `recorder`.
pub async fn execute(
    task: &Task,
    env: &TaskEnv,
    recorder: &RunRecorder,
    stop: &RunStop,
    limits: Limits,
) -> Outcome {
    let Prepared {
        mut cmd,
        program,
        cwd,
        env: config_env,
    } = command(&task.config);
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
    if !env.inherit {
        cmd.env_clear();
        for key in MINIMAL_ENV {
            match std::env::var_os(key) {
                Some(value) => {
                    cmd.env(key, value);
                }
                None if key == "PATH" => {
                    cmd.env(key, DEFAULT_PATH);
                }
                None => {}
            }
        }
    }
    cmd.envs(&env.vars);
    if let Some(config_env) = config_env {
        cmd.envs(config_env);
    }
    cmd.envs(&env.run)
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
    let timeout = async {
        match limits.timeout {
            Some(t) => tokio::time::sleep(t.0).await,
            None => std::future::pending().await,
        }
    };
    let (status, ended) = tokio::select! {
        s = child.wait() => (s, Ended::Itself),
        _ = stop.stopped() => (terminate(&mut child, pid, limits.kill_grace).await, Ended::Stopped),
        _ = timeout => (terminate(&mut child, pid, limits.kill_grace).await, Ended::TimedOut),
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
    match (status, ended) {
        (Err(e), _) => Outcome::failed(format!("waiting for the task failed: {e}")),
        (Ok(_), Ended::Stopped) => {
            let (status, reason) = stop
                .cause()
                .unwrap_or(super::stop::StopCause::Shutdown)
                .ends_running();
            Outcome {
                status,
                exit_code: None,
                reason: Some(reason),
            }
        }
        (Ok(_), Ended::TimedOut) => Outcome::failed(format!(
            "timeout: still running after {}",
            limits.timeout.map(|t| t.to_string()).unwrap_or_default()
        )),
        (Ok(s), Ended::Itself) => match (s.code(), s.signal()) {
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

/// How a try ended.
enum Ended {
    Itself,
    Stopped,
    TimedOut,
}

/// Stops a task: SIGTERM to its process group, then, once `grace` has passed, SIGKILL to
/// whatever is left of the group (grandchildren too, also those that ignore SIGTERM).
/// Returns the task's own exit status.
async fn terminate(
    child: &mut Child,
    pid: Option<u32>,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    signal_group(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            return child.wait().await;
        }
    };
    // The task itself ended; what it started may still run in its group.
    while group_alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
    status
}

/// Whether any process is left in the task's process group.
fn group_alive(pid: Option<u32>) -> bool {
    pid.and_then(|p| i32::try_from(p).ok())
        .is_some_and(|p| nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p), None).is_ok())
}

/// Signals the task's whole process group (it was started as a group leader).
fn signal_group(pid: Option<u32>, signal: nix::sys::signal::Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}
