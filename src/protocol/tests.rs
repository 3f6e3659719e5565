//! Every message of every family survives encode -> decode unchanged.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::agent::*;
use super::control::*;
use super::logs::*;
use super::*;
use crate::model::{AgentId, RunId, RunStatus, TaskId, TaskStatus, WorkflowId};
use crate::workflow::parse::parse_workflow;

fn workflow() -> crate::model::Workflow {
    let text = "name: W\ncron: \"0 9 * * Mon-Fri\"\ntimezone: Europe/London\ntasks:\n  a: {name: A, config: !Shell {script: echo}}\n  b: {name: B, depends: [a], config: !Subprocess {cmd: ls, args: [-l], env: {X: y}}}\n";
    parse_workflow(WorkflowId::new("w"), std::path::Path::new("w.yml"), text)
        .workflow
        .expect("valid")
}

fn ts() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).single().unwrap()
        + chrono::Duration::milliseconds(678)
}

fn requests() -> Vec<Request> {
    let agent = AgentInfo {
        id: AgentId::new("a@h"),
        name: "a".into(),
        host: "h".into(),
        slots: 2,
        labels: BTreeMap::from([("gpu".into(), "no".into())]),
        version: "1".into(),
        instance: "i1".into(),
    };
    let attempt = AttemptRef {
        run_id: RunId::new("r"),
        attempt: 1,
        token: "t".into(),
    };
    let record = |event| Record {
        run_id: RunId::new("r"),
        attempt: 1,
        token: "t".into(),
        seq: 7,
        ts: ts(),
        event,
    };
    vec![
        Request::Agent(AgentRequest::Register {
            agent,
            running: vec![attempt.clone()],
        }),
        Request::Agent(AgentRequest::Heartbeat {
            agent_id: AgentId::new("a@h"),
            running: vec![attempt],
            free_slots: 1,
            spool: 0,
        }),
        Request::Agent(AgentRequest::PullWork {
            agent_id: AgentId::new("a@h"),
            free_slots: 2,
        }),
        Request::Agent(AgentRequest::Report {
            agent_id: AgentId::new("a@h"),
            records: vec![
                record(RecordEvent::Task {
                    try_no: 1,
                    task_id: TaskId::new("a"),
                    status: TaskStatus::Failed,
                    exit_code: Some(3),
                    reason: Some("exited with code 3".into()),
                }),
                record(RecordEvent::Log {
                    try_no: 1,
                    task_id: TaskId::new("a"),
                    stream: Stream::Stderr,
                    line_no: 9,
                    line: "héllo \"quoted\"".into(),
                }),
                record(RecordEvent::RunFinished {
                    status: RunStatus::Failed,
                }),
            ],
        }),
        Request::Agent(AgentRequest::Deregister {
            agent_id: AgentId::new("a@h"),
        }),
        Request::Control(ControlRequest::Trigger {
            workflow: "w".into(),
            params: BTreeMap::from([("day".into(), "mon".into())]),
            trigger: Some("event:webhook".into()),
        }),
        Request::Control(ControlRequest::ListRuns {
            workflow: Some("w".into()),
            status: Some(RunStatus::Queued),
            limit: Some(5),
            trigger: Some("event".into()),
            agent: Some("web1".into()),
            since: Some(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()),
            until: None,
        }),
        Request::Control(ControlRequest::ShowRun { run_id: "r".into() }),
        Request::Control(ControlRequest::Explain { run_id: "r".into() }),
        Request::Control(ControlRequest::Rerun {
            run_id: "r".into(),
            failed_only: true,
            latest: false,
            params: BTreeMap::from([("day".into(), "tue".into())]),
        }),
        Request::Control(ControlRequest::Cancel {
            run_id: "r".into(),
            reason: Some("wrong input".into()),
        }),
        Request::Control(ControlRequest::Logs {
            try_no: None,
            run_id: "r".into(),
            task: Some("a".into()),
            after: Some(10),
            before: None,
            limit: None,
            stream: Some(crate::protocol::agent::Stream::Stderr),
            grep: Some("ERROR|WARN".into()),
            since: Some(ts()),
            until: None,
        }),
        Request::Control(ControlRequest::QueryLogs {
            workflow: None,
            since: Some(ts()),
            until: None,
            after: None,
            limit: Some(3),
            stream: None,
            grep: None,
        }),
        Request::Control(ControlRequest::ListAgents),
        Request::Control(ControlRequest::Status),
        Request::Control(ControlRequest::ListWorkflows),
        Request::Control(ControlRequest::ShowWorkflow { id: "w".into() }),
    ]
}

fn responses() -> Vec<Response> {
    let summary = RunSummary {
        rerun_of: None,
        run_id: RunId::new("r"),
        workflow_id: WorkflowId::new("w"),
        status: RunStatus::Running,
        trigger: crate::model::TriggerSource::Cli,
        queued_at: ts(),
        started_at: Some(ts()),
        finished_at: None,
        agent: Some(AgentId::new("a@h")),
        attempt: 1,
        triggered_by: None,
    };
    let line = LogLine {
        try_no: 1,
        id: 3,
        run_id: RunId::new("r"),
        workflow_id: WorkflowId::new("w"),
        task_id: TaskId::new("a"),
        attempt: 1,
        stream: Stream::Stdout,
        seq: 1,
        ts: ts(),
        line: "x".into(),
    };
    vec![
        Response::Agent(AgentReply::Registered {
            heartbeat_interval_ms: 5000,
        }),
        Response::Agent(AgentReply::HeartbeatAck {
            known: false,
            stop: vec![],
        }),
        Response::Agent(AgentReply::Work {
            assignments: vec![Assignment {
                reuse: Default::default(),
                run_id: RunId::new("r"),
                attempt: 1,
                token: "t".into(),
                workflow: workflow(),
                params: BTreeMap::new(),
            }],
            stop: vec![crate::protocol::agent::StopOrder {
                run_id: RunId::new("q"),
                attempt: 2,
                token: "t2".into(),
                reason: "cancelled by ops: wrong file".into(),
            }],
        }),
        Response::Agent(AgentReply::ReportAck {
            acks: vec![RunAck {
                run_id: RunId::new("r"),
                attempt: 1,
                up_to: 9,
            }],
        }),
        Response::Agent(AgentReply::Deregistered),
        Response::Control(ControlReply::Triggered {
            run_id: RunId::new("r"),
        }),
        Response::Control(ControlReply::Explanation {
            run_id: RunId::new("r"),
            status: RunStatus::Queued,
            reasons: vec!["no agent is connected".into()],
        }),
        Response::Control(ControlReply::Cancel {
            run_id: RunId::new("r"),
            status: RunStatus::Running,
            changed: true,
            note: "its agent stops its tasks".into(),
        }),
        Response::Control(ControlReply::Runs {
            runs: vec![summary.clone()],
        }),
        Response::Control(ControlReply::Run {
            run: Box::new(RunDetail {
                summary,
                params: BTreeMap::new(),
                late_records: 0,
                tasks: vec![TaskRunView {
                    try_no: 1,
                    tries: Vec::new(),
                    task_id: TaskId::new("a"),
                    status: TaskStatus::Skipped,
                    started_at: None,
                    finished_at: Some(ts()),
                    exit_code: None,
                    attempt: 1,
                    reason: Some("upstream".into()),
                }],
            }),
        }),
        Response::Control(ControlReply::LogLines {
            lines: vec![line],
            next: Some(3),
        }),
        Response::Control(ControlReply::Workflow {
            workflow: Box::new(workflow()),
        }),
        Response::Error(ErrorReply::new(ErrorCode::NotFound, "no run `x`")),
    ]
}

#[test]
fn every_request_round_trips() {
    for (i, request) in requests().into_iter().enumerate() {
        let envelope = RequestEnvelope {
            v: VERSION,
            id: i as u64,
            request,
        };
        let bytes = encode(&envelope);
        let back = decode_request(&bytes, 1 << 20)
            .unwrap_or_else(|(_, e)| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(back, envelope);
    }
}

#[test]
fn every_response_round_trips() {
    for (i, response) in responses().into_iter().enumerate() {
        let envelope = ResponseEnvelope {
            v: VERSION,
            id: i as u64,
            response,
        };
        let bytes = encode(&envelope);
        let back = decode_response(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(back, envelope);
    }
}

#[test]
fn the_documented_trigger_bytes_decode() {
    // The example in docs/protocol.md: what a listener in any language sends.
    let bytes = br#"{"v":1,"id":1,"request":{"family":"control","message":{"type":"trigger","workflow":"hello","params":{"day":"mon"},"trigger":"event:webhook"}}}"#;
    let envelope = decode_request(bytes, 1 << 20).unwrap_or_else(|(_, e)| panic!("{e}"));
    assert!(matches!(
        envelope.request,
        Request::Control(ControlRequest::Trigger { ref workflow, .. }) if workflow == "hello"
    ));
}

#[test]
fn timestamps_have_milliseconds() {
    let json = String::from_utf8(encode(&responses()[8])).unwrap();
    assert!(
        json.contains("\"queued_at\":\"2025-01-02T03:04:05.678Z\""),
        "{json}"
    );
}

#[test]
fn every_control_request_is_named_as_on_the_wire() {
    let mut all: Vec<ControlRequest> = requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::Control(c) => Some(c),
            _ => None,
        })
        .collect();
    // The rest, from their wire form.
    for json in [
        r#"{"type":"reload_workflows"}"#,
        r#"{"type":"whoami"}"#,
        r#"{"type":"list_schedules"}"#,
        r#"{"type":"set_schedule_paused","workflow":"w","paused":true}"#,
        r#"{"type":"schedule_history","workflow":"w"}"#,
        r#"{"type":"failpoint","name":"store_stall","duration_ms":1}"#,
        r#"{"type":"query","sql":"SELECT 1"}"#,
        r#"{"type":"report"}"#,
        r#"{"type":"gc"}"#,
        r#"{"type":"warnings","after":3}"#,
        r#"{"type":"audit"}"#,
    ] {
        all.push(serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}")));
    }
    assert_eq!(all.len(), 23, "one of each request");
    for request in all {
        let wire = serde_json::to_value(&request).unwrap_or_default();
        assert_eq!(Some(request.name()), wire["type"].as_str(), "{request:?}");
    }
}
