//! `cdktr config`: the resolved configuration, and with `--sources` where each value came from.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use super::output::print_json;
use crate::config::{Config, Resolved, Source, KEYS};

#[derive(Serialize)]
struct Json<'a> {
    file: Option<&'a std::path::Path>,
    config: &'a Config,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<std::collections::BTreeMap<&'static str, &'a Source>>,
}

pub fn print(resolved: &Resolved, sources: bool, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        let default = Source::Default;
        let sources = sources.then(|| {
            KEYS.iter()
                .map(|k| (*k, resolved.sources.get(k).unwrap_or(&default)))
                .collect()
        });
        print_json(&Json {
            file: resolved.file.as_deref(),
            config: &resolved.config,
            sources,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    match &resolved.file {
        Some(file) => writeln!(out, "# config file: {}", file.display())?,
        None => writeln!(out, "# config file: none (built-in defaults)")?,
    }
    write!(out, "{}", resolved.to_toml(sources))?;
    Ok(ExitCode::SUCCESS)
}
