//! The transport handshake, over real TCP against two real principals (one requiring CURVE,
//! one on loopback without authentication): ZMTP greetings with every mechanism and version,
//! then command and message frames (READY with metadata, CURVE HELLO and INITIATE, ERROR,
//! requests) whose flags, claimed lengths and bodies are mutated. The principals must stay up
//! and keep answering. Behind the CURVE handshake, the ZAP handler (cdktr's own code in it)
//! is fuzzed in process with mutated authentication requests.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use cdktr::auth::{zap, KeysFile, LogThrottle};

use super::{guarded, inputs, mutate, seed, Progress, Rng};
use crate::auth::secured;
use crate::common::cluster::{Api, Principal};
use crate::common::{valid_workflow, Workspace};

fn greeting(rng: &mut Rng) -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f];
    let (major, minor) = *rng.pick(&[(3, 0), (3, 1), (3, 1), (2, 0), (1, 0), (255, 255)]);
    g.extend([major, minor]);
    let mechanisms: [&[u8]; 6] = [b"NULL", b"CURVE", b"CURVE", b"PLAIN", b"GSSAPI", b"X"];
    let mechanism = rng.pick(&mechanisms);
    let mut name = mechanism.to_vec();
    name.resize(20, 0);
    g.extend(name);
    g.push(u8::from(rng.one_in(4)));
    g.resize(64, 0);
    g
}

/// A command body: its name, then `data`.
fn command(name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![name.len() as u8];
    body.extend(name.as_bytes());
    body.extend(data);
    body
}

/// ZMTP metadata: `name` and `value` pairs.
fn metadata(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(4) {
        let name = rng.pick(&["Socket-Type", "Identity", "User-Id", "X-Long"]);
        let value: Vec<u8> = match rng.below(4) {
            0 => b"DEALER".to_vec(),
            1 => b"ROUTER".to_vec(),
            2 => vec![b'x'; rng.below(600)],
            _ => rng.some_bytes(40),
        };
        out.push(name.len() as u8);
        out.extend(name.as_bytes());
        let claimed = if rng.one_in(5) {
            *rng.pick(&[0, u32::MAX, 1 << 31, value.len() as u32 + 1])
        } else {
            value.len() as u32
        };
        out.extend(claimed.to_be_bytes());
        out.extend(value);
    }
    out
}

fn body(rng: &mut Rng) -> (bool, Vec<u8>) {
    match rng.below(7) {
        0 => (true, command("READY", &metadata(rng))),
        1 => {
            let mut hello = vec![1, 0];
            hello.extend([0u8; 72]);
            hello.extend(rng.bytes(32 + 8 + 80));
            (true, command("HELLO", &hello))
        }
        2 => {
            let len = 96 + 8 + 144 + rng.below(300);
            (true, command("INITIATE", &rng.bytes(len)))
        }
        3 => {
            let reason = vec![b'e'; rng.below(300)];
            let mut data = vec![reason.len() as u8];
            data.extend(reason);
            (true, command("ERROR", &data))
        }
        4 => (true, rng.some_bytes(64)),
        5 => (
            false,
            br#"{"v":1,"id":1,"request":{"family":"control","message":{"type":"trigger","workflow":"hello"}}}"#.to_vec(),
        ),
        _ => (false, br#"{"v":1,"id":2,"request":{"family":"control","message":{"type":"status"}}}"#.to_vec()),
    }
}

/// A frame: flags, size (short or long, sometimes claiming another length), body.
fn frame(rng: &mut Rng, is_command: bool, body: &[u8]) -> Vec<u8> {
    let actual = body.len() as u64;
    let claimed = if rng.one_in(4) {
        *rng.pick(&[
            0,
            1,
            actual.saturating_sub(1),
            actual + 1,
            255,
            1 << 31,
            1 << 40,
            1 << 63,
            u64::MAX,
        ])
    } else {
        actual
    };
    let long = claimed > 255 || rng.one_in(8);
    let mut flags = u8::from(is_command) << 2 | u8::from(long) << 1;
    if rng.one_in(10) {
        flags = rng.next() as u8;
    }
    let mut out = vec![flags];
    if long {
        out.extend(claimed.to_be_bytes());
    } else {
        out.push(claimed as u8);
    }
    out.extend(body);
    out
}

fn input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = greeting(rng);
    for _ in 0..rng.below(4) {
        let (is_command, body) = body(rng);
        out.extend(frame(rng, is_command, &body));
    }
    if rng.one_in(3) {
        out = mutate(rng, &out, corpus);
    }
    out
}

/// Sends `bytes` on a new connection, ends the sending side, and reads until the principal
/// closes it.
fn send(addr: &str, bytes: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

#[test]
fn the_handshake_survives_shaped_inputs_and_the_principals_keep_serving() {
    let secure_ws = secured();
    let open_ws = Workspace::new();
    open_ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let env = [("CDKTR_PRINCIPAL_MAX_QUEUED_RUNS", "100")];
    let mut secure = Principal::start(&secure_ws, &[], &env);
    let mut open = Principal::start(&open_ws, &[], &env);
    let addrs =
        [secure.api.clone(), open.api.clone()].map(|a| a.trim_start_matches("tcp://").to_owned());
    let total = inputs();
    let base = seed("handshake");
    let workers = 4;
    let progress = std::sync::Mutex::new(Progress::new("handshake", total));
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (addrs, progress) = (&addrs, &progress);
            scope.spawn(move || {
                let mut rng = Rng::new(base.wrapping_add(w));
                let corpus = vec![greeting(&mut rng)];
                for i in 0..total / workers + u64::from(w < total % workers) {
                    let bytes = input(&mut rng, &corpus);
                    send(&addrs[(i % 2) as usize], &bytes);
                    progress.lock().unwrap().tick();
                }
            });
        }
    });
    for (p, ws) in [(&mut secure, &secure_ws), (&mut open, &open_ws)] {
        assert!(
            p.daemon.child.try_wait().unwrap().is_none(),
            "a principal exited"
        );
        let stderr = std::fs::read_to_string(ws.path().join("principal.stderr")).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    Api::connect(&open.api).status();
    let viewer = secure_ws.run(&[
        "--config",
        "viewer.toml",
        "--principal",
        &secure.api,
        "status",
    ]);
    assert_eq!(viewer.code, Some(0), "{}", viewer.stderr);
}

#[test]
fn the_zap_handler_survives_shaped_requests() {
    let ws = secured();
    let keys = KeysFile::new(&ws.path().join("keys"));
    let listed = keys.current();
    let known: Vec<Vec<u8>> = listed
        .entries
        .iter()
        .map(|e| zmq::z85_decode(&e.public).unwrap())
        .collect();
    let throttle = LogThrottle::default();
    let total = inputs();
    let mut rng = Rng::new(seed("zap"));
    let mut progress = Progress::new("zap", total);
    let mut accepted = 0u64;
    for _ in 0..total {
        let key = if rng.one_in(2) {
            rng.pick(&known).clone()
        } else {
            {
                let n = *rng.pick(&[0, 31, 32, 33, 64]);
                rng.bytes(n)
            }
        };
        let mut request: Vec<Vec<u8>> = vec![
            b"1.0".to_vec(),
            rng.some_bytes(8),
            rng.pick(&[&b"cdktr"[..], b"cdktr-stream", b"", b"other"])
                .to_vec(),
            b"127.0.0.1".to_vec(),
            rng.some_bytes(8),
            rng.pick(&[&b"CURVE"[..], b"NULL", b"PLAIN", b""]).to_vec(),
            key,
        ];
        if rng.one_in(3) {
            let corpus = request.clone();
            let i = rng.below(request.len());
            request[i] = mutate(&mut rng, &corpus[i], &corpus);
        }
        if rng.one_in(5) {
            request.truncate(rng.below(request.len() + 1));
        }
        if rng.one_in(10) {
            request.push(rng.some_bytes(100));
        }
        let flat: Vec<u8> = request.concat();
        guarded("zap", &flat, || {
            let reply = zap::answer(&request, &keys, &throttle);
            assert_eq!(reply.len(), 6, "a ZAP reply has six frames");
            let code = String::from_utf8_lossy(&reply[2]).into_owned();
            assert!(["200", "400", "500"].contains(&code.as_str()), "{code}");
            if code == "200" {
                accepted += 1;
                assert!(!reply[4].is_empty(), "an accepted client is named");
            }
        });
        progress.tick();
    }
    eprintln!("fuzz zap: {accepted} of {total} requests accepted");
    assert!(accepted > 0, "shaped requests reach the key lookup");
}
