//! A warning in the principal's log for a workflow that requires a label no agent has ever
//! had (a typo, or an agent not set up yet): its runs would wait forever. Checked when the
//! principal starts and each time the workflows are loaded again.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::{Label, WorkflowId};
use crate::store::Store;
use crate::workflow::Catalog;

/// Warns about unknown labels now and after each reload, until `stop`.
pub async fn watch_unknown(
    mut catalog: watch::Receiver<Arc<Catalog>>,
    store: Store,
    stop: CancellationToken,
) {
    loop {
        let current = catalog.borrow_and_update().clone();
        match store.agent_labels().await {
            Ok(seen) => {
                let agents: Vec<BTreeMap<String, String>> =
                    seen.iter().map(|labels| parse(labels)).collect();
                for (workflow, label) in unknown(&current, &agents) {
                    tracing::warn!(
                        %workflow,
                        %label,
                        "workflow requires a label no agent has ever had: its runs wait until \
                         an agent with it connects"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "agent labels not read"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = catalog.changed() => if changed.is_err() { return },
        }
    }
}

/// An agent's stored labels as a map (`key` alone maps to an empty value).
fn parse(labels: &[String]) -> BTreeMap<String, String> {
    let parsed: Vec<Label> = labels.iter().filter_map(|l| Label::parse(l).ok()).collect();
    Label::to_map(&parsed)
}

/// Each workflow's required labels that none of `agents` carries.
fn unknown(catalog: &Catalog, agents: &[BTreeMap<String, String>]) -> Vec<(WorkflowId, Label)> {
    catalog
        .workflows
        .values()
        .flat_map(|w| {
            w.agent
                .labels
                .iter()
                .filter(|l| !agents.iter().any(|a| l.held_by(a)))
                .map(|l| (w.id.clone(), l.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_no_agent_had_are_found() {
        let yaml = "name: W\nagent: {labels: [gpu, region=eu]}\ntasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n";
        let parsed =
            crate::workflow::parse::parse_workflow(WorkflowId::new("w"), "w.yml".as_ref(), yaml);
        let workflow = parsed.workflow.expect("valid");
        let mut catalog = Catalog::default();
        catalog.workflows.insert(workflow.id.clone(), workflow);
        let seen = [
            parse(&["gpu".into()]),
            parse(&["region=us".into(), "ssd".into()]),
        ];
        let found: Vec<String> = unknown(&catalog, &seen)
            .into_iter()
            .map(|(w, l)| format!("{w} {l}"))
            .collect();
        assert_eq!(found, ["w region=eu"]);
        let seen = [parse(&["gpu".into(), "region=eu".into()])];
        assert!(unknown(&catalog, &seen).is_empty());
        assert_eq!(unknown(&catalog, &[]).len(), 2);
    }
}
