//! CURVE authentication with real processes: credentials from `cdktr keys new`, a principal
//! that requires them, roles, agent identity, revocation, and the loopback rule.

use std::collections::BTreeMap;
use std::time::Duration;

use cdktr::auth::Credential;
use cdktr::protocol::agent::AgentRequest;
use cdktr::protocol::{ErrorCode, Request};
use cdktr::transport::{Client, ClientError};

use crate::common::cluster::{start_agent, Principal};
use crate::common::{valid_workflow, Workspace};

const SETTINGS: &str =
    "[principal]\ndata_dir = \"data\"\n[auth]\nkeys = \"keys\"\n[client]\ntimeout = \"3s\"\n";

/// A workspace whose principal requires credentials, with one per role.
pub fn secured() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "cdktr.toml",
        &format!("{SETTINGS}[agent]\ncredential = \"web1.cred\"\n"),
    );
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    for (name, role) in [
        ("ops", "operator"),
        ("viewer", "viewer"),
        ("hook", "trigger"),
        ("web1", "agent"),
        ("web2", "agent"),
    ] {
        let out = ws.run(&[
            "keys",
            "new",
            name,
            "--role",
            role,
            "--out",
            &format!("{name}.cred"),
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        ws.write(
            &format!("{name}.toml"),
            &format!("{SETTINGS}[client]\ncredential = \"{name}.cred\"\n").replacen(
                "[client]\ntimeout = \"3s\"\n",
                "",
                1,
            ),
        );
    }
    ws
}

/// `cdktr --config NAME.toml --principal API ARGS...`
pub fn as_client(ws: &Workspace, name: &str, api: &str, args: &[&str]) -> crate::common::Run {
    let config = format!("{name}.toml");
    let mut all = vec!["--config", config.as_str(), "--principal", api];
    all.extend_from_slice(args);
    ws.run(&all)
}

#[test]
fn without_a_credential_nothing_is_answered_and_each_role_does_only_its_part() {
    let ws = secured();
    let p = Principal::start(&ws, &[], &[]);
    // No credential: the CURVE handshake never completes, so no request gets any reply.
    let anonymous = ws.run(&["--principal", &p.api, "status"]);
    assert_eq!(anonymous.code, Some(3), "{}", anonymous.stderr);

    assert_eq!(as_client(&ws, "viewer", &p.api, &["status"]).code, Some(0));
    let me = as_client(&ws, "hook", &p.api, &["whoami"]);
    assert_eq!(
        me.stdout.trim(),
        "hook (trigger), authenticated with CURVE",
        "{}",
        me.stderr
    );
    let refused = as_client(&ws, "viewer", &p.api, &["run", "hello"]);
    assert_eq!(refused.code, Some(5), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("forbidden") && refused.stderr.contains("may not send `trigger`"),
        "{}",
        refused.stderr
    );
    let run = as_client(&ws, "hook", &p.api, &["run", "hello"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run_id = run.stdout.trim().to_owned();
    let logs = as_client(&ws, "hook", &p.api, &["logs", &run_id]);
    assert_eq!(
        logs.code,
        Some(5),
        "a trigger credential cannot read logs: {}",
        logs.stderr
    );
    assert_eq!(
        as_client(&ws, "ops", &p.api, &["workflow", "reload"]).code,
        Some(0)
    );

    // Revoked: from the next connection on, nothing is answered.
    let revoke = ws.run(&["keys", "revoke", "viewer"]);
    assert_eq!(revoke.code, Some(0), "{}", revoke.stderr);
    assert_eq!(as_client(&ws, "viewer", &p.api, &["status"]).code, Some(3));
}

#[test]
fn an_agent_runs_work_only_under_its_own_name_and_pins_the_principal() {
    let ws = secured();
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "web1", 1, &[]);
    let run = as_client(&ws, "ops", &p.api, &["run", "hello", "--wait"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // web2's credential cannot speak for web1.
        let web2 = Credential::load(&ws.path().join("web2.cred")).unwrap();
        let client = Client::connect_as(&p.api, Duration::from_secs(5), Some(web2.clone()));
        let heartbeat = Request::Agent(AgentRequest::Heartbeat {
            agent_id: cdktr::model::AgentId::new("web1@somewhere"),
            running: vec![],
            free_slots: 1,
            spool: 0,
        });
        match client.request(heartbeat).await {
            Err(ClientError::Remote(e)) => assert_eq!(e.code, ErrorCode::Forbidden, "{e}"),
            other => panic!("expected forbidden, got {other:?}"),
        }
        // A credential that pins another principal's key never connects.
        let mut impostor = web2;
        impostor.principal = cdktr::auth::KeyPair::generate().unwrap().public;
        let client = Client::connect_as(&p.api, Duration::from_secs(2), Some(impostor));
        let status = client.status().await;
        assert!(
            matches!(status, Err(ClientError::Unreachable { .. })),
            "{status:?}"
        );
    });
}

#[test]
fn a_principal_without_keys_refuses_to_listen_beyond_loopback() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdktr-principal"))
        .current_dir(ws.path())
        .args([
            "--listen",
            "tcp://0.0.0.0:0",
            "--logs-publish",
            "tcp://127.0.0.1:0",
        ])
        .args(["--workflow-dir", "wf", "--data-dir", "data"])
        .env_remove("CDKTR_AUTH_KEYS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("accepts connections from other hosts")
            && stderr.contains("cdktr keys new"),
        "{stderr}"
    );
}

#[test]
fn the_live_stream_is_for_viewers_and_operators_only() {
    let ws = secured();
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "web1", 1, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = |name: &str| {
            let credential = Credential::load(&ws.path().join(format!("{name}.cred"))).unwrap();
            Client::connect_as(&p.api, Duration::from_secs(5), Some(credential))
        };
        let (viewer, hook, ops) = (client("viewer"), client("hook"), client("ops"));
        let prefix = cdktr::protocol::logs::topic_prefix(Some("hello"), None, None);
        let mut watching = viewer.subscribe(&prefix).await.unwrap();
        // A trigger credential's subscriber completes no handshake on the stream.
        let endpoint = viewer.stream_endpoint().await.unwrap();
        let sneaking = {
            let socket = cdktr::transport::socket::context()
                .socket(zmq::SUB)
                .unwrap();
            hook.credential().unwrap().apply(&socket).unwrap();
            socket.set_subscribe(b"").unwrap();
            socket.connect(&endpoint).unwrap();
            socket
        };
        // Trigger runs until the viewer sees one end (a subscription takes effect shortly).
        let mut ended = false;
        while !ended {
            ops.trigger("hello", BTreeMap::new(), "api").await.unwrap();
            let event = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if let Ok(cdktr::protocol::logs::LogEvent::RunEnded { .. }) =
                        watching.next().await
                    {
                        return;
                    }
                }
            })
            .await;
            ended = event.is_ok();
        }
        sneaking.set_rcvtimeo(500).unwrap();
        assert!(
            sneaking.recv_multipart(0).is_err(),
            "a trigger credential read the live stream"
        );
    });
}

#[test]
fn without_authentication_every_local_client_is_an_anonymous_operator() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[]);
    let me = ws.run(&["--principal", &p.api, "whoami", "--json"]);
    assert_eq!(me.code, Some(0), "{}", me.stderr);
    let json = me.json();
    assert_eq!(json["authenticated"], false);
    assert_eq!(json["role"], "operator");
    assert!(json["name"].is_null());
}
