//! The local control socket: on the principal's host, being able to open it is the operator
//! credential (and a local agent's), even when TCP requires CURVE credentials.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cdktr::protocol::logs::LogEvent;
use cdktr::transport::Client;

use crate::auth::secured;
use crate::common::cluster::{start_agent, Principal};

#[test]
fn the_control_socket_serves_operators_and_local_agents_without_a_key() {
    let ws = secured();
    let p = Principal::start(&ws, &[], &[]);
    let socket = ws.path().join("data/control.sock");
    let endpoint = format!("ipc://{}", socket.display());
    assert!(
        p.daemon.ready.contains(&format!("control={endpoint}")),
        "{}",
        p.daemon.ready
    );
    for file in [socket.clone(), ws.path().join("data/control.sock.logs")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{}", file.display());
    }

    // The CLI finds the socket from the configuration alone, with no credential.
    let me = ws.run(&["whoami", "--json"]);
    assert_eq!(me.code, Some(0), "{}", me.stderr);
    let me = me.json();
    assert_eq!(me["role"], "operator");
    assert!(me["name"].as_str().unwrap().starts_with("local:"), "{me}");
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
        while !ended {
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
    });
}

#[test]
fn a_second_principal_on_the_same_socket_refuses_and_a_stale_one_is_replaced() {
    let ws = secured();
    let mut first = Principal::start(&ws, &[], &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdktr-principal"))
        .current_dir(ws.path())
        .args(["--listen", "tcp://127.0.0.1:0"])
        .args(["--logs-publish", "tcp://127.0.0.1:0"])
        .args(["--workflow-dir", "wf", "--data-dir", "data"])
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
