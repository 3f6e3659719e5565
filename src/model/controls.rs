//! Execution controls of a workflow and its tasks: retries, timeouts, trigger rules, the
//! environment and where a run may go (agent labels). Validated from YAML in
//! `workflow::parse`, carried in the definition to the agent (which enforces timeouts,
//! retries and trigger rules) and to the coordinator (which routes by label).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TaskStatus;

/// A duration written and read as text (`10s`, `2h 30m`), as in the YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// The longest span accepted anywhere: far beyond any sensible setting and far from the
    /// limits of clock arithmetic.
    pub const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

    /// Parses `text` as a duration longer than zero and at most ten years.
    pub fn parse(text: &str) -> Result<Span, String> {
        let s = text.trim();
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 500ms, 30s or 2h"))?;
        if d.is_zero() {
            return Err(format!("`{s}` must be longer than zero"));
        }
        if d > Self::MAX {
            return Err(format!("`{s}` is longer than ten years"));
        }
        Ok(Span(d))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// How the delay between tries grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// The same `retry_delay` before every try.
    #[default]
    Fixed,
    /// `retry_delay`, then twice that, four times..., up to `retry_max_delay`.
    Exponential,
}

impl Backoff {
    pub const NAMES: &'static str = "fixed or exponential";
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fixed" => Some(Backoff::Fixed),
            "exponential" => Some(Backoff::Exponential),
            _ => None,
        }
    }
}

/// A task's retries: up to `retries` more tries after a failed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub retries: u32,
    pub delay: Span,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Span>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            retries: 0,
            delay: Span(Retry::DEFAULT_DELAY),
            backoff: Backoff::Fixed,
            max_delay: None,
        }
    }
}

impl Retry {
    pub const DEFAULT_DELAY: Duration = Duration::from_secs(10);
    /// The most retries a task may ask for.
    pub const MAX_RETRIES: u32 = 100;

    pub fn is_none(&self) -> bool {
        self.retries == 0
    }

    /// The wait before try `next` (2 for the first retry), or None when `next` is past the
    /// last try allowed.
    pub fn delay_before(&self, next: u32) -> Option<Duration> {
        if next < 2 || next > self.retries.saturating_add(1) {
            return None;
        }
        let delay = match self.backoff {
            Backoff::Fixed => self.delay.0,
            Backoff::Exponential => {
                let factor = 1u32.checked_shl(next - 2).unwrap_or(u32::MAX);
                self.delay.0.checked_mul(factor).unwrap_or(Span::MAX)
            }
        };
        let cap = self.max_delay.map_or(Span::MAX, |m| m.0);
        Some(delay.min(cap).min(Span::MAX))
    }
}

/// When a task runs, given how its dependencies ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every dependency completed (the default).
    #[default]
    AllSuccess,
    /// Every dependency ended, whatever it did (cleanup).
    AllDone,
    /// At least one dependency failed (an alert).
    OneFailed,
    /// Every dependency failed.
    AllFailed,
    /// No dependency failed (completed or skipped).
    NoneFailed,
}

/// What a trigger rule decides about a task once its dependencies have all ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Run,
    Skip,
}

impl TriggerRule {
    pub const NAMES: &'static str = "all_success, all_done, one_failed, all_failed or none_failed";
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all_success" => Some(TriggerRule::AllSuccess),
            "all_done" => Some(TriggerRule::AllDone),
            "one_failed" => Some(TriggerRule::OneFailed),
            "all_failed" => Some(TriggerRule::AllFailed),
            "none_failed" => Some(TriggerRule::NoneFailed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllDone => "all_done",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::NoneFailed => "none_failed",
        }
    }

    /// Whether a task with these dependencies' final statuses runs. A dependency that was
    /// skipped or cancelled counts as not failed and not completed. With no dependencies a
    /// task always runs. Statuses must all be terminal.
    pub fn decide(self, deps: &[TaskStatus]) -> Decision {
        if deps.is_empty() {
            return Decision::Run;
        }
        let failed = |s: &TaskStatus| *s == TaskStatus::Failed;
        let runs = match self {
            TriggerRule::AllSuccess => deps.iter().all(|s| s.counts_as_success()),
            TriggerRule::AllDone => true,
            TriggerRule::OneFailed => deps.iter().any(failed),
            TriggerRule::AllFailed => deps.iter().all(failed),
            TriggerRule::NoneFailed => !deps.iter().any(failed),
        };
        if runs {
            Decision::Run
        } else {
            Decision::Skip
        }
    }
}

/// An agent label: `key=value`, or `key` alone (a flag such as `gpu`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub key: String,
    pub value: Option<String>,
}

impl Label {
    /// Parses `key` or `key=value`: letters, digits and `_ - . /`, no spaces.
    pub fn parse(text: &str) -> Result<Label, String> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        };
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (text, None),
        };
        if !ok(key) || value.is_some_and(|v| !ok(v)) {
            return Err(format!(
                "label `{text}` must be `key` or `key=value`, each made of letters, digits, \
                 `_`, `-`, `.` or `/` (no spaces)"
            ));
        }
        Ok(Label {
            key: key.to_owned(),
            value: value.map(str::to_owned),
        })
    }

    /// An agent's labels as it announces them: `key` to value, a flag such as `gpu` mapping
    /// to an empty value.
    pub fn to_map<'a>(labels: impl IntoIterator<Item = &'a Label>) -> BTreeMap<String, String> {
        labels
            .into_iter()
            .map(|l| (l.key.clone(), l.value.clone().unwrap_or_default()))
            .collect()
    }

    /// The texts (`gpu`, `region=eu`) of an agent's announced labels (see [`Label::to_map`]).
    pub fn texts(map: &BTreeMap<String, String>) -> Vec<String> {
        map.iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect()
    }

    /// Whether an agent with `labels` (flags have an empty value) carries this label.
    pub fn held_by(&self, labels: &BTreeMap<String, String>) -> bool {
        match (&self.value, labels.get(&self.key)) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(want), Some(have)) => want == have,
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.key),
            None => f.write_str(&self.key),
        }
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Label::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Where a workflow's runs may go: agents carrying every one of `labels`, the agent named
/// `prefer` first when it can take the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<String>,
}

impl Placement {
    pub fn is_any(&self) -> bool {
        self.labels.is_empty() && self.prefer.is_none()
    }

    /// Whether an agent with `labels` may take the run.
    pub fn admits(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|l| l.held_by(labels))
    }

    /// The labels an agent with `labels` lacks.
    pub fn missing<'a>(&'a self, labels: &BTreeMap<String, String>) -> Vec<&'a Label> {
        self.labels.iter().filter(|l| !l.held_by(labels)).collect()
    }
}

#[cfg(test)]
#[path = "controls_tests.rs"]
mod tests;
