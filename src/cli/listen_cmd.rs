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
    let client =
        rt.block_on(async { Client::connect(&config.client.principal, config.client.timeout) });
    match cmd {
        ListenCommand::Webhook {
            bind,
            token,
            no_auth,
        } => {
            if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                anyhow::bail!("the webhook token is empty (is CDKTR_WEBHOOK_TOKEN set?): refusing to run without auth");
            }
            if token.is_none() && !no_auth {
                anyhow::bail!(
                    "a webhook needs a shared token: --token T (or CDKTR_WEBHOOK_TOKEN), or --no-auth on a trusted network"
                );
            }
            let webhook = Webhook::bind(&bind)?;
            crate::runtime::ready_line(format!(
                "cdktr listen webhook ready address={}",
                webhook.address()
            ));
            tracing::info!(address = %webhook.address(), auth = token.is_some(), "webhook listening");
            let handle = rt.handle().clone();
            rt.block_on(async move {
                tokio::task::spawn_blocking(move || webhook.serve(client, token, handle)).await
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
