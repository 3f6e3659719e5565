//! Execution controls of a workflow and its tasks (retries, timeouts, trigger rules, the
//! environment, placement, concurrency), each problem reported at its line.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::validate::check_env;
use super::{RawPlacement, RawTask, RawWorkflow, Validator};
use crate::model::{Backoff, Label, Placement, Retry, Span, TriggerRule};

/// A task's controls, validated.
pub(super) struct TaskControls {
    pub retry: Retry,
    pub timeout: Option<Span>,
    pub kill_grace: Option<Span>,
    pub trigger_rule: TriggerRule,
    pub env: BTreeMap<String, String>,
}

/// A workflow's controls, validated.
pub(super) struct WorkflowControls {
    pub timeout: Option<Span>,
    pub kill_grace: Option<Span>,
    pub env: BTreeMap<String, String>,
    pub agent: Placement,
    pub max_active_runs: Option<u32>,
}

/// The most runs of one workflow `max_active_runs` may allow.
const MAX_ACTIVE_RUNS: i64 = 10_000;

impl Validator<'_> {
    pub(super) fn task_controls(&mut self, task: &str, raw: &RawTask) -> TaskControls {
        let retries = self
            .whole(
                raw.retries.as_ref(),
                "retries",
                0,
                i64::from(Retry::MAX_RETRIES),
                task,
            )
            .unwrap_or(0);
        let delay = self.span(raw.retry_delay.as_ref(), "retry_delay", task);
        let backoff = raw.retry_backoff.as_ref().and_then(|b| {
            let parsed = Backoff::parse(b.value.trim());
            if parsed.is_none() {
                self.error_at(
                    b,
                    format!(
                        "`retry_backoff` must be {}, not `{}`",
                        Backoff::NAMES,
                        b.value
                    ),
                )
                .task = Some(task.to_owned());
            }
            parsed
        });
        let max_delay = self.span(raw.retry_max_delay.as_ref(), "retry_max_delay", task);
        if retries == 0 {
            for (key, given) in [
                ("retry_delay", raw.retry_delay.as_ref()),
                ("retry_backoff", raw.retry_backoff.as_ref()),
                ("retry_max_delay", raw.retry_max_delay.as_ref()),
            ] {
                if let Some(given) = given {
                    self.warn_at(
                        given,
                        format!("task `{task}`: `{key}` has no effect without `retries`"),
                    );
                }
            }
        }
        let trigger_rule = raw.trigger_rule.as_ref().and_then(|r| {
            let parsed = TriggerRule::parse(r.value.trim());
            if parsed.is_none() {
                self.error_at(
                    r,
                    format!(
                        "`trigger_rule` must be {}, not `{}`",
                        TriggerRule::NAMES,
                        r.value
                    ),
                )
                .task = Some(task.to_owned());
            }
            parsed
        });
        TaskControls {
            retry: Retry {
                retries: u32::try_from(retries).unwrap_or(0),
                delay: delay.unwrap_or(Span(Retry::DEFAULT_DELAY)),
                backoff: backoff.unwrap_or_default(),
                max_delay,
            },
            timeout: self.span(raw.timeout.as_ref(), "timeout", task),
            kill_grace: self.span(raw.kill_grace.as_ref(), "kill_grace", task),
            trigger_rule: trigger_rule.unwrap_or_default(),
            env: self.env(raw.env.as_ref(), Some(task)),
        }
    }

    pub(super) fn workflow_controls(&mut self, raw: &RawWorkflow) -> WorkflowControls {
        let max_active_runs = self
            .whole(
                raw.max_active_runs.as_ref(),
                "max_active_runs",
                1,
                MAX_ACTIVE_RUNS,
                "",
            )
            .and_then(|n| u32::try_from(n).ok());
        WorkflowControls {
            timeout: self.span(raw.timeout.as_ref(), "timeout", ""),
            kill_grace: self.span(raw.kill_grace.as_ref(), "kill_grace", ""),
            env: self.env(raw.env.as_ref(), None),
            agent: raw
                .agent
                .as_ref()
                .map(|p| self.placement(&p.value))
                .unwrap_or_default(),
            max_active_runs,
        }
    }

    fn placement(&mut self, raw: &RawPlacement) -> Placement {
        let mut labels: Vec<Label> = Vec::new();
        for text in raw.labels.iter().flatten() {
            match Label::parse(text.value.trim()) {
                Ok(label) if labels.contains(&label) => {
                    self.warn_at(text, format!("label `{label}` is listed twice"));
                }
                Ok(label) => labels.push(label),
                Err(e) => {
                    self.error_at(text, format!("`agent.labels`: {e}"));
                }
            }
        }
        let prefer = raw.prefer.as_ref().and_then(|p| {
            let name = p.value.trim();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.error_at(
                    p,
                    format!(
                        "`agent.prefer` must name an agent (no spaces), not `{}`",
                        p.value
                    ),
                );
                return None;
            }
            Some(name.to_owned())
        });
        Placement { labels, prefer }
    }

    /// A duration field: None when absent or invalid (reported).
    fn span(&mut self, raw: Option<&Spanned<String>>, field: &str, task: &str) -> Option<Span> {
        let raw = raw?;
        match Span::parse(&raw.value) {
            Ok(span) => Some(span),
            Err(e) => {
                let d = self.error_at(raw, format!("`{field}`: {e}"));
                if !task.is_empty() {
                    d.task = Some(task.to_owned());
                }
                None
            }
        }
    }

    /// A whole-number field between `min` and `max`: None when absent or out of range.
    fn whole(
        &mut self,
        raw: Option<&Spanned<i64>>,
        field: &str,
        min: i64,
        max: i64,
        task: &str,
    ) -> Option<i64> {
        let raw = raw?;
        if (min..=max).contains(&raw.value) {
            return Some(raw.value);
        }
        let d = self.error_at(
            raw,
            format!(
                "`{field}` must be a whole number from {min} to {max}, not {}",
                raw.value
            ),
        );
        if !task.is_empty() {
            d.task = Some(task.to_owned());
        }
        None
    }

    fn env(
        &mut self,
        raw: Option<&Spanned<BTreeMap<String, String>>>,
        task: Option<&str>,
    ) -> BTreeMap<String, String> {
        let Some(raw) = raw else {
            return BTreeMap::new();
        };
        let mut problems = Vec::new();
        check_env(Some(&raw.value), &mut problems);
        for problem in problems {
            let d = self.error_at(raw, problem);
            d.task = task.map(str::to_owned);
        }
        raw.value.clone()
    }
}
