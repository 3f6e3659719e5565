//! `cdktr keys init|new|list|revoke`: client credentials for a principal that requires CURVE
//! authentication (`[auth] keys`).

use std::io::Write;
use std::process::ExitCode;

use super::output::{print_json, Table};
use super::KeysCommand;
use crate::auth::{Credential, KeyEntry, KeyPair, KeysFile, PrincipalKey};
use crate::config::Config;

pub fn run(cmd: KeysCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let auth = &config.auth;
    let keys_file = (!auth.keys.as_os_str().is_empty()).then(|| KeysFile::new(&auth.keys));
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::New {
            name,
            role,
            out: path,
        } => {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                anyhow::bail!(
                    "a client name is letters, digits, `-`, `_` and `.`: `{name}` is not"
                );
            }
            if let Some(file) = &keys_file {
                if file
                    .read()
                    .ok()
                    .and_then(|k| k.by_name(&name).cloned())
                    .is_some()
                {
                    anyhow::bail!(
                        "`{name}` is in {} already: revoke it first",
                        file.path().display()
                    );
                }
            }
            let principal = PrincipalKey::load_or_create(&auth.principal_key)?;
            let credential = Credential {
                name: name.clone(),
                role,
                pair: KeyPair::generate()?,
                principal: principal.pair.public,
            };
            credential.save(&path)?;
            let entry = KeyEntry {
                name: name.clone(),
                role,
                public: credential.pair.public.clone(),
            };
            writeln!(out, "wrote {} ({name}, {role})", path.display())?;
            match &keys_file {
                Some(file) => {
                    file.add(&entry)?;
                    writeln!(out, "added {name} to {}", file.path().display())?;
                }
                None => {
                    writeln!(
                        out,
                        "no keys file is configured ([auth] keys): add this line to the principal's keys file:"
                    )?;
                    writeln!(out, "{} {} {}", entry.name, entry.role, entry.public)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Init { json } => {
            let path = &auth.principal_key;
            let existed = path.exists();
            let key = PrincipalKey::load_or_create(path)?;
            if json {
                print_json(&serde_json::json!({
                    "file": path, "public": key.pair.public, "created": !existed
                }))?;
            } else {
                let what = if existed { "exists" } else { "created" };
                writeln!(out, "principal key {what}: {}", path.display())?;
                writeln!(out, "public key: {}", key.pair.public)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List { json } => {
            let Some(file) = keys_file else {
                anyhow::bail!("no keys file is configured ([auth] keys)");
            };
            let keys = file.read()?;
            if json {
                let rows: Vec<serde_json::Value> = keys
                    .entries
                    .iter()
                    .map(
                        |e| serde_json::json!({"name": e.name, "role": e.role, "public": e.public}),
                    )
                    .collect();
                print_json(&rows)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut table = Table::new(&["NAME", "ROLE", "PUBLIC KEY"]);
            for e in &keys.entries {
                table.row(vec![e.name.clone(), e.role.to_string(), e.public.clone()]);
            }
            table.write(&mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { name } => {
            let Some(file) = keys_file else {
                anyhow::bail!("no keys file is configured ([auth] keys)");
            };
            if !file.revoke(&name)? {
                anyhow::bail!("no client `{name}` in {}", file.path().display());
            }
            writeln!(
                out,
                "revoked {name}: the principal refuses its connections and requests from now on"
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
