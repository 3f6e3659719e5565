//! The principal answers garbage, wrong versions and oversize messages with typed errors and
//! keeps serving; the live stream's filters are exact.

use std::time::Duration;

use bytes::Bytes;
use cdktr::protocol::logs::{topic_prefix, LogEvent};
use cdktr::protocol::{ErrorCode, Response};
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::common::cluster::{start_agent, Api, Principal};
use crate::common::{valid_workflow, Workspace};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn exchange(socket: &mut zeromq::DealerSocket, frames: Vec<Bytes>) -> serde_json::Value {
    let mut msg = ZmqMessage::from(frames[0].clone());
    for f in &frames[1..] {
        msg.push_back(f.clone());
    }
    socket.send(msg).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), socket.recv())
        .await
        .expect("a reply within 5 s")
        .unwrap();
    let body = reply.into_vec().pop().unwrap();
    serde_json::from_slice(&body).expect("reply is JSON")
}

fn error_code(reply: &serde_json::Value) -> String {
    let envelope: cdktr::protocol::ResponseEnvelope =
        serde_json::from_value(reply.clone()).unwrap();
    match envelope.response {
        Response::Error(e) => serde_json::to_value(e.code)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[test]
fn bad_messages_get_typed_error_replies_and_the_principal_keeps_serving() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[("CDKTR_PRINCIPAL_MAX_MESSAGE_BYTES", "4096")]);
    rt().block_on(async {
        let mut s = zeromq::DealerSocket::new();
        s.connect(&p.api).await.unwrap();
        let garbage = exchange(&mut s, vec![Bytes::from_static(b"\x00\xffnot json at all")]).await;
        assert_eq!(error_code(&garbage), "malformed");

        let wrong_version = exchange(
            &mut s,
            vec![Bytes::from_static(br#"{"v":99,"id":41,"request":{"family":"control","message":{"type":"status"}}}"#)],
        )
        .await;
        assert_eq!(error_code(&wrong_version), "unsupported_version");
        assert_eq!(wrong_version["id"], 41);

        let unknown = exchange(
            &mut s,
            vec![Bytes::from_static(br#"{"v":1,"id":42,"request":{"family":"control","message":{"type":"self_destruct"}}}"#)],
        )
        .await;
        assert_eq!(error_code(&unknown), "unknown_type");
        assert_eq!(unknown["id"], 42);

        let bad_field = exchange(
            &mut s,
            vec![Bytes::from_static(br#"{"v":1,"id":43,"request":{"family":"control","message":{"type":"trigger","workflow":7}}}"#)],
        )
        .await;
        assert_eq!(error_code(&bad_field), "malformed");

        let oversize = exchange(&mut s, vec![Bytes::from(vec![b'x'; 10_000])]).await;
        assert_eq!(error_code(&oversize), "oversize");

        let extra_frames = exchange(&mut s, vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]).await;
        assert_eq!(error_code(&extra_frames), "malformed");

        let unknown_workflow = exchange(
            &mut s,
            vec![Bytes::from_static(br#"{"v":1,"id":44,"request":{"family":"control","message":{"type":"trigger","workflow":"helo"}}}"#)],
        )
        .await;
        assert_eq!(error_code(&unknown_workflow), "not_found");
        assert!(unknown_workflow.to_string().contains("did you mean `hello`?"), "{unknown_workflow}");

        // And a normal request right after, on the same connection.
        let status = exchange(
            &mut s,
            vec![Bytes::from_static(br#"{"v":1,"id":45,"request":{"family":"control","message":{"type":"status"}}}"#)],
        )
        .await;
        assert_eq!(status["id"], 45);
        assert_eq!(status["response"]["family"], "control");
        assert_eq!(status["response"]["reply"]["workflows_loaded"], 1);
    });
    let _ = ErrorCode::Malformed;
}

#[test]
fn a_req_socket_with_an_empty_delimiter_is_answered_too() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[]);
    rt().block_on(async {
        let mut s = zeromq::ReqSocket::new();
        s.connect(&p.api).await.unwrap();
        s.send(ZmqMessage::from(
            r#"{"v":1,"id":1,"request":{"family":"control","message":{"type":"trigger","workflow":"hello","trigger":"event:test"}}}"#,
        ))
        .await
        .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), s.recv()).await.unwrap().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&reply.into_vec().pop().unwrap()).unwrap();
        assert_eq!(body["response"]["reply"]["kind"], "triggered", "{body}");
    });
}

#[test]
fn live_stream_workflow_filter_is_exact() {
    let ws = Workspace::new();
    for id in ["etl", "etl2", "etl/daily"] {
        ws.write(
            &format!("wf/{id}.yml"),
            &format!("name: {id}\ntasks:\n  t: {{name: T, config: !Shell {{script: \"echo from {id}\"}}}}\n"),
        );
    }
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 3, &[]);
    let api = Api::connect(&p.api);
    let publish = p.daemon.field("logs_publish");
    let rt = rt();
    let mut sub = rt.block_on(async {
        let mut sub = zeromq::SubSocket::new();
        sub.connect(&publish).await.unwrap();
        sub.subscribe(std::str::from_utf8(&topic_prefix(Some("etl"), None, None)).unwrap())
            .await
            .unwrap();
        sub
    });
    // A subscription takes effect asynchronously; trigger until our first run is seen.
    let mut seen = Vec::new();
    let mut etl_ended = false;
    let others: Vec<String> = vec![api.trigger("etl2"), api.trigger("etl.daily")];
    let mut ours = vec![api.trigger("etl")];
    while !etl_ended {
        let event =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(3), sub.recv()).await });
        let Ok(Ok(msg)) = event else {
            ours.push(api.trigger("etl"));
            continue;
        };
        let body = msg.into_vec().pop().unwrap();
        let event: LogEvent = serde_json::from_slice(&body).unwrap();
        match &event {
            LogEvent::Line(l) => seen.push(l.workflow_id.to_string()),
            LogEvent::Task { workflow_id, .. } => seen.push(workflow_id.to_string()),
            LogEvent::RunEnded {
                workflow_id,
                run_id,
                ..
            } => {
                seen.push(workflow_id.to_string());
                etl_ended = ours.iter().any(|r| r == run_id.as_str());
            }
        }
    }
    for other in &others {
        api.wait_done(other, Duration::from_secs(30));
    }
    // Drain what else arrived: still only `etl`.
    while let Ok(Ok(msg)) =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(300), sub.recv()).await })
    {
        let event: LogEvent = serde_json::from_slice(&msg.into_vec().pop().unwrap()).unwrap();
        if let LogEvent::Line(l) = event {
            seen.push(l.workflow_id.to_string());
        }
    }
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|w| w == "etl"), "{seen:?}");
}
