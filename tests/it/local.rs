//! The local control socket: on the principal's host, being able to open it is the operator
//! credential (and a local agent's), even when TCP requires CURVE credentials.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cdktr::protocol::agent::AgentRequest;
use cdktr::protocol::logs::LogEvent;
use cdktr::protocol::{ErrorCode, Request};
use cdktr::transport::{Client, ClientError};

use crate::auth::secured;
use crate::common::cluster::{start_agent, Principal};

/// This process's user and primary group names.
fn me() -> (String, String) {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
        .unwrap()
        .unwrap()
        .name;
    (user, group)
}

#[test]
fn the_control_socket_serves_operators_and_local_agents_without_a_key() {
    use std::os::unix::fs::MetadataExt;
    let ws = secured();
    let (user, group) = me();
    // The socket's group: here this process's own group, which it may give files to.
    let p = Principal::start(&ws, &[], &[("CDKTR_PRINCIPAL_CONTROL_GROUP", &group)]);
    let socket = ws.path().join("data/control.sock");
    let endpoint = format!("ipc://{}", socket.display());
    assert!(
        p.daemon.ready.contains(&format!("control={endpoint}")),
        "{}",
        p.daemon.ready
    );
    for file in [socket.clone(), ws.path().join("data/control.sock.logs")] {
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o660,
            "{}",
            file.display()
        );
        assert_eq!(meta.gid(), nix::unistd::getgid().as_raw());
    }

    // The CLI finds the socket from the configuration alone, with no credential.
    let me = ws.run(&["whoami", "--json"]);
    assert_eq!(me.code, Some(0), "{}", me.stderr);
    let me = me.json();
    assert_eq!(me["role"], "operator");
    assert_eq!(me["name"], format!("local:{user}"), "{me}");
    // A local agent registers through it with no key (the workspace names web1's
    // credential for agents: over the socket it is not needed, and not used).
    let _agent = start_agent(&ws, &endpoint, "local1", 1, &[]);
    let run = ws.run(&["run", "hello", "--wait"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);

    // The live stream is served beside it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::connect(&endpoint, Duration::from_secs(5));
        assert_eq!(
            client.stream_endpoint().await.unwrap(),
            format!("{endpoint}.logs")
        );
        let mut stream = client.subscribe(b"").await.unwrap();
        let mut ended = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !ended {
            assert!(
                std::time::Instant::now() < deadline,
                "no run end on the local stream"
            );
            client
                .trigger("hello", BTreeMap::new(), "api")
                .await
                .unwrap();
            ended = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    if let Ok(LogEvent::RunEnded { .. }) = stream.next().await {
                        return;
                    }
                }
            })
            .await
            .is_ok();
        }
        // An agent on the socket acts only for agents of this host.
        let elsewhere = Request::Agent(AgentRequest::Deregister {
            agent_id: cdktr::model::AgentId::new("web1@another-host"),
        });
        match client.request(elsewhere).await {
            Err(ClientError::Remote(e)) => assert_eq!(e.code, ErrorCode::Forbidden, "{e}"),
            other => panic!("expected forbidden, got {other:?}"),
        }
    });
}

#[test]
fn without_its_group_the_control_socket_is_the_principals_users_alone() {
    let ws = secured();
    let _p = Principal::start(
        &ws,
        &[],
        &[("CDKTR_PRINCIPAL_CONTROL_GROUP", "no-such-group-here")],
    );
    let mode = std::fs::metadata(ws.path().join("data/control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_second_principal_on_the_same_socket_refuses_and_a_stale_one_is_replaced() {
    let ws = secured();
    let mut first = Principal::start(&ws, &[], &[]);
    // Another data directory (the same one is refused earlier, by its lock), the same socket.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdktr-principal"))
        .current_dir(ws.path())
        .env("CDKTR_PRINCIPAL_CONTROL_SOCKET", "data/control.sock")
        .args(["--listen", "tcp://127.0.0.1:0"])
        .args(["--logs-publish", "tcp://127.0.0.1:0"])
        .args(["--workflow-dir", "wf", "--data-dir", "data2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("control.sock") && stderr.contains("another principal is serving it"),
        "{stderr}"
    );
    // Killed outright, the first leaves its socket file behind; the next one replaces it.
    first.daemon.signal(nix::sys::signal::Signal::SIGKILL);
    first.daemon.wait_exit(Duration::from_secs(10));
    assert!(ws.path().join("data/control.sock").exists());
    let _second = Principal::start(&ws, &[], &[]);
    let me = ws.run(&["whoami"]);
    assert_eq!(me.code, Some(0), "{}", me.stderr);
}

#[test]
fn a_user_who_may_not_open_the_control_socket_is_refused_at_once_with_exit_5() {
    use std::os::unix::process::CommandExt;
    let ws = crate::common::Workspace::new();
    ws.write("wf/hello.yml", &crate::common::valid_workflow("Hello"));
    let _p = Principal::start(&ws, &[], &[]);
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_cdktr"));
    cli.current_dir("/").env("CDKTR_CONFIG", "/dev/null");
    let socket = if nix::unistd::geteuid().is_root() {
        // root may open anything: run as nobody, for whom the workspace (0700) is closed.
        cli.uid(65534).gid(65534);
        ws.path().join("data/control.sock")
    } else {
        let locked = ws.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        locked.join("control.sock")
    };
    let out = cli
        .env(
            "CDKTR_CLIENT_PRINCIPAL",
            format!("ipc://{}", socket.display()),
        )
        .args(["run", "hello"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("permission denied") && stderr.contains("group"),
        "{stderr}"
    );
}
