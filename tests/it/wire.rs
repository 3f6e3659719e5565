//! What travels between hosts, seen by a man in the middle: a TCP proxy between an agent (or
//! client) and the principal records every byte, and can flip a byte or replay a message.
//! With CURVE nothing a task prints is readable on the wire, and a modified or replayed
//! message is refused; without it (the control case) the same capture holds the lines.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdktr::auth::Credential;
use cdktr::transport::{Client, ClientError};

use crate::auth::secured;
use crate::common::cluster::{start_agent, Principal};
use crate::common::Workspace;

const SECRET: &str = "the-launch-code-is-0451";

#[derive(Default)]
struct Wire {
    /// Every byte, both directions.
    captured: Vec<u8>,
    /// Flip a bit in the middle of the next client-to-principal chunk.
    tamper_next: bool,
    /// Keep a copy of the next client-to-principal chunk in `recorded`.
    record_next: bool,
    recorded: Option<Vec<u8>>,
    /// The principal side of the latest connection, to inject bytes into.
    to_principal: Option<TcpStream>,
    /// Connections the principal has closed.
    closed_by_principal: usize,
}

/// A proxy on a free loopback port forwarding to `target`; its endpoint and its state.
fn proxy(target: &str) -> (String, Arc<Mutex<Wire>>) {
    let addr = target.trim_start_matches("tcp://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("tcp://{}", listener.local_addr().unwrap());
    let wire = Arc::new(Mutex::new(Wire::default()));
    let state = wire.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(principal) = TcpStream::connect(&addr) else {
                continue;
            };
            state.lock().unwrap().to_principal = principal.try_clone().ok();
            let (c2, p2) = (client.try_clone().unwrap(), principal.try_clone().unwrap());
            let up = state.clone();
            std::thread::spawn(move || pump(client, principal, &up, true));
            let down = state.clone();
            std::thread::spawn(move || pump(p2, c2, &down, false));
        }
    });
    (endpoint, wire)
}

fn pump(mut from: TcpStream, mut to: TcpStream, wire: &Mutex<Wire>, upstream: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        {
            let mut w = wire.lock().unwrap();
            w.captured.extend_from_slice(chunk);
            if upstream && w.record_next {
                w.record_next = false;
                w.recorded = Some(chunk.to_vec());
            }
            if upstream && w.tamper_next {
                w.tamper_next = false;
                chunk[n / 2] ^= 0x01;
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    if !upstream {
        wire.lock().unwrap().closed_by_principal += 1;
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Waits until the principal has closed `n` proxied connections.
fn closed(wire: &Mutex<Wire>, n: usize) {
    crate::common::cluster::wait_for(
        Duration::from_secs(10),
        "the principal to drop the connection",
        || (wire.lock().unwrap().closed_by_principal >= n).then_some(()),
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn with_secret_workflow(ws: &Workspace) {
    ws.write(
        "wf/secret.yml",
        &format!(
            "name: Secret\ntasks:\n  a:\n    name: A\n    config: !Shell\n      script: echo {SECRET}; echo {SECRET} >&2\n"
        ),
    );
}

/// Runs the secret workflow on an agent that reaches the principal through a proxy; the
/// bytes the proxy saw.
fn capture(ws: &Workspace, p: &Principal, run_as: &[&str]) -> Vec<u8> {
    let (endpoint, wire) = proxy(&p.api);
    let _agent = start_agent(ws, &endpoint, "web1", 1, &[]);
    let mut args = run_as.to_vec();
    args.extend(["run", "secret", "--wait"]);
    let run = ws.run(&args);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let captured = wire.lock().unwrap().captured.clone();
    assert!(
        captured.len() > 500,
        "the agent's traffic went through the proxy"
    );
    captured
}

#[test]
fn a_capture_of_agent_traffic_holds_no_clear_text_with_curve() {
    let ws = secured();
    with_secret_workflow(&ws);
    let p = Principal::start(&ws, &[], &[]);
    let captured = capture(&ws, &p, &["--config", "ops.toml", "--principal", &p.api]);
    for text in [SECRET, "secret", "echo", "register", "pull_work"] {
        assert!(
            !contains(&captured, text),
            "`{text}` in clear text on the wire"
        );
    }
}

#[test]
fn without_authentication_the_same_capture_shows_the_lines() {
    // The control case: the capture above would see the lines if they were not encrypted.
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &crate::common::valid_workflow("Hello"));
    with_secret_workflow(&ws);
    let p = Principal::start(&ws, &[], &[]);
    let captured = capture(&ws, &p, &["--principal", &p.api]);
    assert!(contains(&captured, SECRET));
}

#[test]
fn a_modified_or_replayed_message_is_refused() {
    let ws = secured();
    let p = Principal::start(&ws, &[], &[]);
    let (endpoint, wire) = proxy(&p.api);
    let ops = Credential::load(&ws.path().join("ops.cred")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let direct = Client::connect_as(&p.api, Duration::from_secs(5), Some(ops.clone()));
        let count = || async { direct.runs(None, None, 100).await.unwrap().len() };
        let proxied = Client::connect_as(&endpoint, Duration::from_secs(2), Some(ops.clone()));
        proxied.status().await.unwrap(); // the handshake is done

        // One trigger goes through and is recorded on the way.
        wire.lock().unwrap().record_next = true;
        proxied
            .trigger("hello", BTreeMap::new(), "api")
            .await
            .unwrap();
        assert_eq!(count().await, 1);
        // The same bytes again, on the same connection: CURVE's nonce has moved on.
        let recorded = wire.lock().unwrap().recorded.clone().unwrap();
        let mut socket = wire.lock().unwrap().to_principal.take().unwrap();
        socket.write_all(&recorded).unwrap();
        closed(&wire, 1);
        assert_eq!(count().await, 1, "a replayed trigger queued a run");

        // A fresh connection whose next message has one bit flipped gets no answer.
        let proxied = Client::connect_as(&endpoint, Duration::from_secs(2), Some(ops));
        proxied.status().await.unwrap();
        wire.lock().unwrap().tamper_next = true;
        let tampered = proxied.trigger("hello", BTreeMap::new(), "api").await;
        assert!(
            matches!(tampered, Err(ClientError::Unreachable { .. })),
            "{tampered:?}"
        );
        closed(&wire, 2);
        assert_eq!(count().await, 1, "a modified trigger queued a run");
        // The principal goes on serving everyone else.
        direct.status().await.unwrap();
    });
}
