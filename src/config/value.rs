//! Parsing one configuration value, from TOML or from text (environment and flags).

use std::path::PathBuf;
use std::time::Duration;

/// A raw value: typed when it comes from TOML, text when it comes from env or flags.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
}

fn text<'a>(v: Value<'a>, what: &str) -> Result<&'a str, String> {
    match v {
        Value::Text(s) => Ok(s),
        Value::Toml(toml::Value::String(s)) => Ok(s),
        Value::Toml(other) => Err(format!(
            "expected {what} as a string, found {}",
            other.type_str()
        )),
    }
}

/// `tcp://host:port` or `ipc:///path`.
pub fn endpoint(v: Value<'_>) -> Result<String, String> {
    let s = text(v, "an endpoint")?.trim();
    if let Some(rest) = s.strip_prefix("tcp://") {
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` has no port (expected tcp://HOST:PORT)"))?;
        if host.is_empty() {
            return Err(format!("`{s}` has no host (expected tcp://HOST:PORT)"));
        }
        port.parse::<u16>()
            .map_err(|_| format!("`{s}`: port `{port}` is not a number from 0 to 65535"))?;
        Ok(s.to_owned())
    } else if let Some(path) = s.strip_prefix("ipc://") {
        if path.is_empty() {
            return Err(format!(
                "`{s}` has no socket path (expected ipc:///path/to/socket)"
            ));
        }
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an endpoint (expected tcp://HOST:PORT or ipc:///PATH)"
        ))
    }
}

/// `drain` or `cancel`.
pub fn shutdown_mode(v: Value<'_>) -> Result<super::ShutdownMode, String> {
    match text(v, "a shutdown mode")?.trim() {
        "drain" => Ok(super::ShutdownMode::Drain),
        "cancel" => Ok(super::ShutdownMode::Cancel),
        other => Err(format!(
            "`{other}` is not a shutdown mode (expected drain or cancel)"
        )),
    }
}

/// A tracing filter (`info`, `warn,cdktr::principal=debug`).
pub fn log_filter(v: Value<'_>) -> Result<String, String> {
    let s = text(v, "a log filter")?.trim();
    tracing_subscriber::EnvFilter::try_new(s).map_err(|e| {
        format!("`{s}` is not a log filter ({e}); e.g. info, debug, warn,cdktr=debug")
    })?;
    Ok(s.to_owned())
}

/// `HOST:PORT` on a loopback address, or empty for none.
pub fn loopback_address(v: Value<'_>) -> Result<String, String> {
    let s = text(v, "an address")?.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let addr: std::net::SocketAddr = s.parse().map_err(|_| {
        format!("`{s}` is not an address (expected HOST:PORT, e.g. 127.0.0.1:9464)")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "`{s}` is not a loopback address: metrics are served on this host only (127.0.0.1 \
             or [::1]); let Prometheus reach them through a local proxy or its node's own scrape"
        ));
    }
    Ok(s.to_owned())
}

pub fn path(v: Value<'_>) -> Result<PathBuf, String> {
    let s = text(v, "a path")?;
    if s.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    Ok(PathBuf::from(s))
}

pub fn name(v: Value<'_>) -> Result<String, String> {
    let s = text(v, "a name")?.trim();
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '@')
    {
        return Err(format!(
            "`{s}` may not contain spaces, control characters or `@`"
        ));
    }
    Ok(s.to_owned())
}

/// Agent labels: a TOML array of strings, or text with labels separated by commas
/// (`gpu,region=eu`), each `key` or `key=value`.
pub fn labels(v: Value<'_>) -> Result<Vec<crate::model::Label>, String> {
    let items: Vec<String> = match v {
        Value::Text(s) => s
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        Value::Toml(toml::Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "expected labels as strings, found {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()?,
        Value::Toml(toml::Value::String(s)) => vec![s.clone()],
        Value::Toml(other) => {
            return Err(format!(
                "expected a list of labels, found {}",
                other.type_str()
            ))
        }
    };
    let mut labels = Vec::new();
    for item in items {
        let label = crate::model::Label::parse(item.trim())?;
        if labels
            .iter()
            .any(|l: &crate::model::Label| l.key == label.key)
        {
            return Err(format!("label `{}` is given twice", label.key));
        }
        labels.push(label);
    }
    Ok(labels)
}

/// A human duration such as `500ms`, `30s` or `2h`.
pub fn duration(v: Value<'_>) -> Result<Duration, String> {
    let s = text(v, "a duration")?.trim();
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 500ms, 30s or 2h"))?;
    if d.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    // Far beyond any sensible setting, and far from the limits of clock arithmetic.
    if d > std::time::Duration::from_secs(10 * 365 * 24 * 3600) {
        return Err(format!("`{s}` is longer than ten years"));
    }
    Ok(d)
}

/// A whole number of at least `min`.
pub fn count(v: Value<'_>, min: usize) -> Result<usize, String> {
    let n: i64 = match v {
        Value::Toml(toml::Value::Integer(i)) => *i,
        Value::Toml(other) => {
            return Err(format!(
                "expected a whole number, found {}",
                other.type_str()
            ))
        }
        Value::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?,
    };
    usize::try_from(n)
        .ok()
        .filter(|&n| n >= min)
        .ok_or_else(|| format!("{n} is out of range (at least {min})"))
}

/// A duration, or none (keep for ever) for an empty text.
pub fn optional_duration(v: Value<'_>) -> Result<Option<Duration>, String> {
    if text(v, "a duration")?.trim().is_empty() {
        return Ok(None);
    }
    duration(v).map(Some)
}

/// A size in bytes: a whole number, or text with a unit (`500MB`, `10GiB`, `2 GB`); none for
/// an empty text or 0.
pub fn size(v: Value<'_>) -> Result<Option<u64>, String> {
    let bytes = match v {
        Value::Toml(toml::Value::Integer(i)) => {
            u64::try_from(*i).map_err(|_| format!("{i} is not a size (bytes, at least 0)"))?
        }
        _ => {
            let s = text(v, "a size")?.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let digits = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (number, unit) = s.split_at(digits);
            let number: f64 = number
                .parse()
                .map_err(|_| format!("`{s}` is not a size; write e.g. 500MB or 10GB"))?;
            let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1_000,
                "kib" => 1 << 10,
                "mb" => 1_000_000,
                "mib" => 1 << 20,
                "gb" => 1_000_000_000,
                "gib" => 1 << 30,
                "tb" => 1_000_000_000_000,
                "tib" => 1 << 40,
                other => {
                    return Err(format!(
                        "`{s}`: unknown unit `{other}` (B, KB, MB, GB, TB, or KiB, MiB, GiB, TiB)"
                    ))
                }
            };
            let bytes = number * scale as f64;
            if !bytes.is_finite() || bytes >= u64::MAX as f64 {
                return Err(format!("`{s}` is too large"));
            }
            bytes as u64
        }
    };
    Ok((bytes > 0).then_some(bytes))
}

/// `tcp://old-host:old-port` with the host and/or port replaced.
pub fn replace_host_port(current: &str, host: Option<&str>, port: Option<&str>) -> String {
    let rest = current.strip_prefix("tcp://").unwrap_or("127.0.0.1:0");
    let (old_host, old_port) = rest.rsplit_once(':').unwrap_or((rest, "0"));
    format!(
        "tcp://{}:{}",
        host.map(str::trim).unwrap_or(old_host),
        port.map(str::trim).unwrap_or(old_port)
    )
}

/// Serialises durations as humantime text (`30s`), the form the TOML file uses.
pub mod duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// Serialises an optional duration as humantime text, empty for none.
pub mod optional_duration_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_str(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let text = |s| size(Value::Text(s));
        assert_eq!(text("500MB"), Ok(Some(500_000_000)));
        assert_eq!(text("1GiB"), Ok(Some(1 << 30)));
        assert_eq!(text("1.5 kb"), Ok(Some(1_500)));
        assert_eq!(text(""), Ok(None));
        assert_eq!(text("0"), Ok(None));
        for bad in [
            "lots",
            "5 parsecs",
            "-1MB",
            "1e400GB",
            "99999999999999999999TB",
        ] {
            assert!(text(bad).is_err(), "{bad}");
        }
        let int = toml::Value::Integer(4096);
        assert_eq!(size(Value::Toml(&int)), Ok(Some(4096)));
        let negative = toml::Value::Integer(-1);
        assert!(size(Value::Toml(&negative)).is_err());
    }

    #[test]
    fn endpoints() {
        assert!(endpoint(Value::Text("tcp://127.0.0.1:5561")).is_ok());
        assert!(endpoint(Value::Text("tcp://127.0.0.1:0")).is_ok());
        assert!(endpoint(Value::Text("ipc:///run/cdktr.sock")).is_ok());
        for bad in [
            "127.0.0.1:5561",
            "tcp://host",
            "tcp://:1",
            "tcp://h:99999",
            "ipc://",
        ] {
            assert!(endpoint(Value::Text(bad)).is_err(), "{bad}");
        }
        let int = toml::Value::Integer(5);
        assert_eq!(
            endpoint(Value::Toml(&int)).unwrap_err(),
            "expected an endpoint as a string, found integer"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            duration(Value::Text("500ms")),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(duration(Value::Text("2h")), Ok(Duration::from_secs(7200)));
        assert!(duration(Value::Text("soon")).is_err());
        assert!(duration(Value::Text("0s")).is_err());
        assert!(duration(Value::Text("300000000000y")).is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(count(Value::Text("5"), 1), Ok(5));
        assert!(count(Value::Text("0"), 1).is_err());
        assert!(count(Value::Text("-3"), 1).is_err());
        assert!(count(Value::Text("many"), 1).is_err());
        let s = toml::Value::String("5".into());
        assert!(count(Value::Toml(&s), 1).is_err());
    }

    #[test]
    fn host_port_replacement() {
        assert_eq!(
            replace_host_port("tcp://127.0.0.1:5561", Some("10.0.0.5"), None),
            "tcp://10.0.0.5:5561"
        );
        assert_eq!(
            replace_host_port("tcp://127.0.0.1:5561", None, Some("7000")),
            "tcp://127.0.0.1:7000"
        );
    }
}
