//! The table of configuration keys: one place that knows every key's name, type and field.

use super::value::{self, Value};
use super::Config;
use crate::workflow::diagnostic::suggest;

/// Every key, in the order `cdktr config` prints them.
pub const KEYS: &[&str] = &[
    "principal.listen",
    "principal.logs_listen",
    "principal.logs_publish",
    "principal.control_socket",
    "principal.control_group",
    "principal.workflow_dir",
    "principal.data_dir",
    "principal.db_path",
    "principal.heartbeat_timeout",
    "principal.max_message_bytes",
    "principal.catchup_limit",
    "principal.rescan_interval",
    "principal.max_queued_runs",
    "principal.max_connections",
    "principal.handshake_timeout",
    "principal.store_memory_mb",
    "principal.query_max_rows",
    "principal.query_timeout",
    "agent.principal",
    "agent.name",
    "agent.max_concurrent_workflows",
    "agent.heartbeat_interval",
    "agent.data_dir",
    "agent.max_buffered_records",
    "agent.credential",
    "agent.labels",
    "agent.shutdown",
    "agent.shutdown_timeout",
    "agent.metrics_listen",
    "client.principal",
    "client.timeout",
    "client.credential",
    "auth.keys",
    "auth.principal_key",
    "log.level",
    "metrics.listen",
    "retention.max_age",
    "retention.max_runs_per_workflow",
    "retention.max_log_bytes",
    "retention.interval",
];

/// `principal.listen` is set by `CDKTR_PRINCIPAL_LISTEN`.
pub fn env_var(key: &str) -> String {
    format!("CDKTR_{}", key.replace('.', "_").to_uppercase())
}

/// " (did you mean `x`?)" for a near miss, else an empty string.
pub fn hint(key: &str) -> String {
    suggest(key, KEYS.iter().copied())
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Parses `value` into the field behind `key`.
pub fn set(c: &mut Config, key: &str, v: Value<'_>) -> Result<(), String> {
    let (p, a, cl, au) = (&mut c.principal, &mut c.agent, &mut c.client, &mut c.auth);
    let (log, metrics, r) = (&mut c.log, &mut c.metrics, &mut c.retention);
    match key {
        "principal.listen" => p.listen = value::endpoint(v)?,
        "principal.logs_listen" => p.logs_listen = value::endpoint(v)?,
        "principal.logs_publish" => p.logs_publish = value::endpoint(v)?,
        "principal.control_socket" => p.control_socket = value::path(v)?,
        "principal.control_group" => p.control_group = value::name(v)?,
        "principal.workflow_dir" => p.workflow_dir = value::path(v)?,
        "principal.data_dir" => p.data_dir = value::path(v)?,
        "principal.db_path" => p.db_path = value::path(v)?,
        "principal.heartbeat_timeout" => p.heartbeat_timeout = value::duration(v)?,
        "principal.max_message_bytes" => p.max_message_bytes = value::count(v, 1024)?,
        "principal.catchup_limit" => p.catchup_limit = value::count(v, 1)?,
        "principal.rescan_interval" => p.rescan_interval = value::duration(v)?,
        "principal.max_queued_runs" => p.max_queued_runs = value::count(v, 1)?,
        "principal.max_connections" => p.max_connections = value::count(v, 1)?,
        "principal.handshake_timeout" => p.handshake_timeout = value::duration(v)?,
        "principal.store_memory_mb" => p.store_memory_mb = value::count(v, 16)?,
        "principal.query_max_rows" => p.query_max_rows = value::count(v, 1)?,
        "principal.query_timeout" => p.query_timeout = value::duration(v)?,
        "agent.principal" => a.principal = value::endpoint(v)?,
        "agent.name" => a.name = value::name(v)?,
        "agent.max_concurrent_workflows" => a.max_concurrent_workflows = value::count(v, 1)?,
        "agent.heartbeat_interval" => a.heartbeat_interval = value::duration(v)?,
        "agent.data_dir" => a.data_dir = value::path(v)?,
        "agent.max_buffered_records" => a.max_buffered_records = value::count(v, 1)?,
        "agent.labels" => a.labels = value::labels(v)?,
        "agent.shutdown" => a.shutdown = value::shutdown_mode(v)?,
        "agent.shutdown_timeout" => a.shutdown_timeout = value::duration(v)?,
        "agent.metrics_listen" => a.metrics_listen = value::loopback_address(v)?,
        "log.level" => log.level = value::log_filter(v)?,
        "metrics.listen" => metrics.listen = value::loopback_address(v)?,
        "retention.max_age" => r.max_age = value::optional_duration(v)?,
        "retention.max_runs_per_workflow" => r.max_runs_per_workflow = value::count(v, 0)?,
        "retention.max_log_bytes" => r.max_log_bytes = value::size(v)?,
        "retention.interval" => r.interval = value::duration(v)?,
        "client.principal" => cl.principal = value::endpoint(v)?,
        "client.timeout" => cl.timeout = value::duration(v)?,
        "agent.credential" => a.credential = value::path(v)?,
        "client.credential" => cl.credential = value::path(v)?,
        "auth.keys" => au.keys = value::path(v)?,
        "auth.principal_key" => au.principal_key = value::path(v)?,
        other => return Err(format!("unknown key `{other}`")),
    }
    Ok(())
}

/// The value behind `key` as a TOML literal.
pub fn get(c: &Config, key: &str) -> String {
    let (p, a, cl, au) = (&c.principal, &c.agent, &c.client, &c.auth);
    let text = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let path = |s: &std::path::Path| text(&s.display().to_string());
    let duration = |d: &std::time::Duration| text(&humantime::format_duration(*d).to_string());
    match key {
        "principal.listen" => text(&p.listen),
        "principal.logs_listen" => text(&p.logs_listen),
        "principal.logs_publish" => text(&p.logs_publish),
        "principal.control_socket" => path(&p.control_socket),
        "principal.control_group" => text(&p.control_group),
        "principal.workflow_dir" => path(&p.workflow_dir),
        "principal.data_dir" => path(&p.data_dir),
        "principal.db_path" => path(&p.db_path),
        "principal.heartbeat_timeout" => duration(&p.heartbeat_timeout),
        "principal.max_message_bytes" => p.max_message_bytes.to_string(),
        "principal.catchup_limit" => p.catchup_limit.to_string(),
        "principal.rescan_interval" => duration(&p.rescan_interval),
        "principal.max_queued_runs" => p.max_queued_runs.to_string(),
        "principal.max_connections" => p.max_connections.to_string(),
        "principal.handshake_timeout" => duration(&p.handshake_timeout),
        "principal.store_memory_mb" => p.store_memory_mb.to_string(),
        "principal.query_max_rows" => p.query_max_rows.to_string(),
        "principal.query_timeout" => duration(&p.query_timeout),
        "agent.principal" => text(&a.principal),
        "agent.name" => text(&a.name),
        "agent.max_concurrent_workflows" => a.max_concurrent_workflows.to_string(),
        "agent.heartbeat_interval" => duration(&a.heartbeat_interval),
        "agent.data_dir" => path(&a.data_dir),
        "agent.max_buffered_records" => a.max_buffered_records.to_string(),
        "agent.shutdown" => text(a.shutdown.as_str()),
        "agent.shutdown_timeout" => duration(&a.shutdown_timeout),
        "agent.metrics_listen" => text(&a.metrics_listen),
        "log.level" => text(&c.log.level),
        "metrics.listen" => text(&c.metrics.listen),
        "retention.max_age" => text(
            &c.retention
                .max_age
                .map(|d| humantime::format_duration(d).to_string())
                .unwrap_or_default(),
        ),
        "retention.max_runs_per_workflow" => c.retention.max_runs_per_workflow.to_string(),
        "retention.max_log_bytes" => c.retention.max_log_bytes.unwrap_or(0).to_string(),
        "retention.interval" => duration(&c.retention.interval),
        "client.principal" => text(&cl.principal),
        "client.timeout" => duration(&cl.timeout),
        "agent.credential" => path(&a.credential),
        "agent.labels" => toml::Value::Array(
            a.labels
                .iter()
                .map(|l| toml::Value::String(l.to_string()))
                .collect(),
        )
        .to_string(),
        "client.credential" => path(&cl.credential),
        "auth.keys" => path(&au.keys),
        "auth.principal_key" => path(&au.principal_key),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_round_trips_through_get_and_set() {
        let defaults = Config::default();
        for key in KEYS {
            let literal = get(&defaults, key);
            assert!(!literal.is_empty(), "{key} has no getter");
            let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {literal}"))
                .unwrap()
                .remove("v")
                .unwrap();
            let mut c = Config::default();
            set(&mut c, key, Value::Toml(&parsed)).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(get(&c, key), literal, "{key}");
        }
    }
}
