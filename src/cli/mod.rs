//! The `cdktr` command line: one dispatch from a parsed [`Cli`] to the command families (one
//! file each), and exit codes.
//!
//! Exit codes: 0 success; 1 the command ran and found a failure (invalid workflows, a failed
//! run); 2 bad usage or configuration; 3 the principal cannot be reached; 4 not found; 5
//! refused (the credential may not do it, or the control socket is not this user's to open).

mod agents_cmd;
mod args;
mod config_cmd;
mod docs_cmd;
pub mod format;
mod gc_cmd;
mod init_cmd;
mod keys_cmd;
mod listen_cmd;
mod live;
mod logs_cmd;
pub(crate) mod output;
mod query_cmd;
mod report_cmd;
mod run_cmd;
mod runs_cmd;
mod schedule_cmd;
mod start_cmd;
mod subcommands;
mod workflow_cmd;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{self, Inputs, Resolved};
use crate::transport::{Client, ClientError};

pub use args::*;

/// The first argument of `cdktr-principal` that makes it run a `cdktr` command line that opens
/// a database file (see `start_cmd::exec_with_store`).
pub const OFFLINE: &str = "__cdktr-offline";

/// Runs a command line that opens a database file itself (`query --offline`), in
/// `cdktr-principal`, which carries DuckDB; any other command runs as [`run`] does.
pub fn run_with_store(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Query {
            sql,
            out,
            max_rows,
            timeout,
            offline: true,
            db,
        } => {
            let timeout = query_cmd::limits(max_rows, timeout.as_deref())?;
            let resolved = resolve_config(cli.config, Vec::new())?.config.principal;
            let limits = crate::store::sql::Limits {
                max_rows: resolved.query_max_rows,
                timeout: resolved.query_timeout,
                max_bytes: resolved.max_message_bytes,
            }
            .lowered(max_rows, timeout);
            query_cmd::offline(&db.unwrap_or(resolved.db_path), &sql, limits, out.format())
        }
        Command::Gc {
            dry_run,
            compact: true,
            db,
            json,
        } => {
            let config = resolve_config(cli.config, Vec::new())?.config;
            gc_cmd::offline(&config, db, dry_run, json)
        }
        _ => run(cli),
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut flags = Vec::new();
    if let Some(p) = &cli.principal {
        flags.push(("client.principal", p.clone(), "--principal".to_owned()));
    }
    // The daemons resolve their own configuration (with their own flags).
    let config = || resolve_config(cli.config.clone(), flags.clone());
    match cli.command {
        Command::Start(StartCommand::Principal { flags }) => {
            start_cmd::exec("cdktr-principal", cli.config.as_deref(), &flags)
        }
        Command::Start(StartCommand::Agent { flags }) => {
            start_cmd::exec("cdktr-agent", cli.config.as_deref(), &flags)
        }
        Command::Config { sources, json } => config_cmd::print(&config()?, sources, json),
        Command::Listen(cmd) => listen_cmd::run(cmd, &config()?.config),
        Command::Keys(cmd) => keys_cmd::run(cmd, &config()?.config),
        Command::Workflow(cmd) => {
            let config = config()?.config;
            with_runtime(async move { workflow_cmd::run(cmd, &config).await })
        }
        Command::Schedule(cmd) => {
            let config = config()?.config;
            with_runtime(async move { schedule_cmd::run(cmd, &config).await })
        }
        Command::Run(args) | Command::Task(TaskCommand::Run(args)) => {
            let params = parse_params(&args.params)?;
            remote(&config()?, async move |c| {
                run_cmd::run(c, args.workflow, params, (args.wait, args.logs), args.json).await
            })
        }
        Command::Runs(cmd) => remote(&config()?, async move |c| runs_cmd::run(c, cmd).await),
        Command::Rerun {
            run,
            failed_only,
            latest,
            params,
            wait,
            logs,
            json,
        } => {
            let params = parse_params(&params)?;
            remote(&config()?, async move |c| {
                run_cmd::rerun(c, &run, (failed_only, latest), params, (wait, logs), json).await
            })
        }
        Command::Query {
            sql,
            out,
            max_rows,
            timeout,
            offline,
            db: _,
        } => {
            let timeout = query_cmd::limits(max_rows, timeout.as_deref())?;
            if offline {
                // This binary has no DuckDB: `cdktr-principal` runs this command line.
                start_cmd::exec_with_store()
            } else {
                remote(&config()?, async move |c| {
                    query_cmd::remote(c, &sql, max_rows, timeout, out.format()).await
                })
            }
        }
        Command::Report {
            since,
            workflow,
            out,
        } => {
            let since = logs_cmd::parse_instant(&since, "--since")?;
            remote(&config()?, async move |c| {
                let result = c.report(Some(since), workflow).await?;
                report_cmd::print(since, &result, out.format())?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Gc {
            dry_run,
            compact,
            db: _,
            json,
        } => {
            if compact {
                // This binary has no DuckDB: `cdktr-principal` runs this command line.
                start_cmd::exec_with_store()
            } else {
                remote(&config()?, async move |c| {
                    let report = c.gc(dry_run).await?;
                    gc_cmd::print(&report, json)?;
                    Ok(ExitCode::SUCCESS)
                })
            }
        }
        Command::Init { dir, force } => init_cmd::run(&dir, force),
        Command::Completions { shell } => docs_cmd::completions(shell),
        Command::Man { out } => docs_cmd::man_pages(&out),
        Command::Failpoint { name, duration } => {
            let duration = humantime::parse_duration(&duration)
                .map_err(|e| anyhow::anyhow!("--for `{duration}`: {e}"))?;
            let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
            remote(&config()?, async move |c| {
                c.failpoint(&name, ms).await?;
                println!(
                    "failpoint {name} armed for {}",
                    humantime::format_duration(duration)
                );
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Explain { run, json } => remote(&config()?, async move |c| {
            let (status, reasons) = c.explain(&run).await?;
            if json {
                output::print_json(&serde_json::json!({
                    "run_id": run, "status": status, "reasons": reasons
                }))?;
            } else {
                println!("run {run}: {status}");
                for reason in reasons {
                    println!("  {reason}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Cancel {
            run,
            reason,
            no_wait,
            json,
        } => remote(&config()?, async move |c| {
            runs_cmd::cancel(c, &run, reason, !no_wait, json).await
        }),
        Command::Logs(args) => remote(&config()?, async move |c| logs_cmd::run(c, args).await),
        Command::Agents(AgentsCommand::List { out }) => remote(&config()?, async move |c| {
            agents_cmd::list(c, out.format()).await
        }),
        Command::Whoami { json } => remote(&config()?, async move |c| {
            let (name, role, authenticated) = c.whoami().await?;
            if json {
                output::print_json(&serde_json::json!({
                    "name": name, "role": role, "authenticated": authenticated
                }))?;
            } else if let Some(name) = name {
                let how = if c.endpoint().starts_with("ipc://") {
                    "through the local control socket"
                } else {
                    "authenticated with CURVE"
                };
                println!("{name} ({role}), {how}");
            } else {
                println!("anonymous ({role}): the principal requires no credential");
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Audit {
            since,
            actor,
            action,
            limit,
            out,
        } => {
            let since = since
                .map(|s| logs_cmd::parse_instant(&s, "--since"))
                .transpose()?;
            remote(&config()?, async move |c| {
                let entries = c.audit(since, actor, action, limit).await?;
                agents_cmd::print_audit(&entries, out.format())?;
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Status { json } => {
            remote(&config()?, async move |c| agents_cmd::status(c, json).await)
        }
    }
}

/// Runs `command` with a client of the configured principal.
fn remote(
    resolved: &Resolved,
    command: impl AsyncFnOnce(&Client) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let config = &resolved.config.client;
    may_open_control_socket(&config.principal)?;
    with_runtime(async move {
        let client = Client::from_config(config)?;
        command(&client).await
    })
}

/// A control socket this user may not open would only time out (its connection is made in the
/// background): say so at once, as a refusal.
fn may_open_control_socket(endpoint: &str) -> anyhow::Result<()> {
    let Some(path) = endpoint.strip_prefix("ipc://") else {
        return Ok(());
    };
    match nix::unistd::access(path, nix::unistd::AccessFlags::W_OK) {
        Err(nix::errno::Errno::EACCES) => Err(anyhow::Error::new(Refused(format!(
            "permission denied: the control socket {path} is for its owner and group only \
             (principal.control_group, `cdktr` when installed as a package); join that group, \
             or use a credential over TCP (--principal tcp://HOST:PORT with client.credential)"
        )))),
        _ => Ok(()),
    }
}

/// A request this client may not make (exit code 5).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn with_runtime(
    work: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(work)
}

fn parse_params(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    raw.iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => anyhow::bail!("--param `{p}`: expected KEY=VALUE"),
        })
        .collect()
}

/// Resolves configuration for this process and prints its warnings to stderr.
pub fn resolve_config(
    file: Option<PathBuf>,
    flags: Vec<(&'static str, String, String)>,
) -> anyhow::Result<Resolved> {
    let mut inputs = Inputs::from_process(file);
    inputs.flags = flags;
    let resolved = config::resolve(&inputs)?;
    for warning in &resolved.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(resolved)
}

/// Maps an error chain to an exit code and prints it; a closed stdout (`| head`) is success.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {err:#}");
    let unreachable = err.chain().any(|c| {
        matches!(
            c.downcast_ref::<ClientError>(),
            Some(ClientError::Unreachable { .. })
        )
    });
    let remote = |code: crate::protocol::ErrorCode| {
        err.chain().any(|c| {
            matches!(
                c.downcast_ref::<ClientError>(),
                Some(ClientError::Remote(e)) if e.code == code
            )
        })
    };
    let refused = err.chain().any(|c| c.downcast_ref::<Refused>().is_some())
        || remote(crate::protocol::ErrorCode::Forbidden);
    if unreachable {
        ExitCode::from(3)
    } else if remote(crate::protocol::ErrorCode::NotFound) {
        ExitCode::from(4)
    } else if refused {
        ExitCode::from(5)
    } else {
        ExitCode::from(2)
    }
}
