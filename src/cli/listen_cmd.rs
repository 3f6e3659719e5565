//! `cdktr listen webhook|files`: event listeners in the foreground. Each prints one ready line
//! on stdout (`cdktr listen webhook ready address=...`) once it accepts events.

use std::process::ExitCode;

use super::ListenCommand;
use crate::config::Config;
use crate::listener::files::FileListener;
use crate::listener::webhook::Webhook;
use crate::transport::Client;

pub fn run(cmd: ListenCommand, config: &Config) -> anyhow::Result<ExitCode> {
    crate::runtime::init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = rt.block_on(async { Client::from_config(&config.client) })?;
    match cmd {
        ListenCommand::Webhook {
            bind,
            token_file,
            token,
            no_auth,
        } => {
            if token.is_some() {
                anyhow::bail!(
                    "--token puts the secret where `ps` shows it to every local user: use --token-file FILE or CDKTR_WEBHOOK_TOKEN"
                );
            }
            let token = webhook_token(token_file.as_deref(), no_auth)?;
            rt.block_on(async move {
                let webhook = Webhook::bind(&bind).await?;
                crate::runtime::ready_line(format!(
                    "cdktr listen webhook ready address={}",
                    webhook.address()
                ));
                tracing::info!(address = %webhook.address(), auth = token.is_some(), "webhook listening");
                webhook.serve(client, token).await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        ListenCommand::Files {
            dir,
            pattern,
            workflow,
            param,
        } => {
            let listener = FileListener::new(&dir, &pattern, workflow, param)?;
            let dir = listener.dir.display().to_string();
            rt.block_on(listener.run(client, || {
                crate::runtime::ready_line(format!("cdktr listen files ready dir={dir}"))
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The webhook's token: from `--token-file` (first line), else `CDKTR_WEBHOOK_TOKEN`; None only
/// with `--no-auth`. An empty token is refused (a typo must not mean "no auth").
fn webhook_token(file: Option<&std::path::Path>, no_auth: bool) -> anyhow::Result<Option<String>> {
    let token = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the token file {}: {e}", path.display())
            })?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        None => std::env::var("CDKTR_WEBHOOK_TOKEN").ok(),
    };
    match token {
        Some(t) if t.is_empty() => anyhow::bail!(
            "the webhook token is empty (check --token-file or CDKTR_WEBHOOK_TOKEN): refusing to run without auth"
        ),
        Some(_) if no_auth => anyhow::bail!("--no-auth and a token exclude each other"),
        Some(t) => Ok(Some(t)),
        None if no_auth => Ok(None),
        None => anyhow::bail!(
            "a webhook needs a shared token: --token-file FILE (or CDKTR_WEBHOOK_TOKEN), or --no-auth on a trusted network"
        ),
    }
}
