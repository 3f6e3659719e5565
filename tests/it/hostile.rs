//! Hostile bytes on the principal's API port: a frame header claiming 2^40 bytes, 100 MB of
//! garbage, and a peer that never reads its replies. The principal allocates nothing for them,
//! stays up, and keeps serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::cluster::{start_agent, Api, Principal};
use crate::common::{valid_workflow, Workspace};

/// The ZMTP 3.0 greeting of a client using the NULL mechanism (64 bytes).
fn greeting() -> Vec<u8> {
    let mut g = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x7f, 3, 0];
    let mut mechanism = b"NULL".to_vec();
    mechanism.resize(20, 0);
    g.extend(mechanism);
    g.push(0); // as-server
    g.resize(64, 0);
    g
}

/// The NULL mechanism's READY command for a DEALER.
fn ready() -> Vec<u8> {
    let mut body = vec![5];
    body.extend(b"READY");
    body.push(11);
    body.extend(b"Socket-Type");
    body.extend(6u32.to_be_bytes());
    body.extend(b"DEALER");
    let mut frame = vec![0x04, u8::try_from(body.len()).unwrap()];
    frame.extend(body);
    frame
}

/// A long message frame header claiming 2^40 bytes (9 bytes).
fn huge_header() -> Vec<u8> {
    let mut h = vec![0x02];
    h.extend((1u64 << 40).to_be_bytes());
    h
}

fn tcp_address(endpoint: &str) -> String {
    endpoint.trim_start_matches("tcp://").to_owned()
}

/// The principal answers a status request within a second, and its process is alive.
fn still_serving(p: &mut Principal, api: &Api) {
    let asked = Instant::now();
    let status = api.status();
    eprintln!("status answered in {:?}", asked.elapsed());
    assert_eq!(status.workflows_loaded, 1);
    assert!(
        p.daemon.child.try_wait().unwrap().is_none(),
        "the principal exited"
    );
}

#[test]
fn a_frame_claiming_a_terabyte_and_100_mb_of_garbage_leave_the_principal_serving() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let address = tcp_address(&p.api);

    // 73 bytes: the greeting, then a frame header claiming 2^40 bytes.
    let mut attacker = TcpStream::connect(&address).unwrap();
    attacker.write_all(&greeting()).unwrap();
    attacker.write_all(&huge_header()).unwrap();
    still_serving(&mut p, &api);

    // The same after a complete handshake.
    let mut attacker = TcpStream::connect(&address).unwrap();
    let mut handshake = greeting();
    handshake.extend(ready());
    attacker.write_all(&handshake).unwrap();
    let _ = attacker.write_all(&huge_header());
    let _ = attacker.write_all(&[0u8; 4096]);
    still_serving(&mut p, &api);

    // 100 MB of garbage; the principal may hang up at any point.
    let mut garbage = TcpStream::connect(&address).unwrap();
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    for _ in 0..100 {
        if garbage.write_all(&chunk).is_err() {
            break;
        }
    }
    still_serving(&mut p, &api);
    let rss = std::fs::read_to_string(format!("/proc/{}/status", p.daemon.child.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .map(str::to_owned)
        .unwrap_or_default();
    eprintln!("principal after the attacks: {rss}");
}

#[test]
fn a_peer_that_never_reads_its_replies_does_not_hold_up_an_agent() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let _agent = start_agent(&ws, &p.api, "worker", 1, &[]);
    // A peer that pipelines status requests and never reads a byte of the answers.
    let mut greedy = TcpStream::connect(tcp_address(&p.api)).unwrap();
    let mut handshake = greeting();
    handshake.extend(ready());
    greedy.write_all(&handshake).unwrap();
    let mut peer_greeting = [0u8; 64];
    greedy.read_exact(&mut peer_greeting).unwrap();
    let request = br#"{"v":1,"id":1,"request":{"family":"control","message":{"type":"status"}}}"#;
    let mut frame = vec![0x00, u8::try_from(request.len()).unwrap()];
    frame.extend_from_slice(request);
    let batch: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 10_000)
        .collect();
    greedy
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..20 {
        if greedy.write_all(&batch).is_err() {
            break; // Its own send buffer is full: the principal stopped reading it, fine.
        }
    }
    // Meanwhile an agent's pull is answered and its run completes.
    let run = api.trigger("hello");
    let done = api.wait_done(&run, Duration::from_secs(60));
    assert_eq!(done.summary.status, cdktr::model::RunStatus::Completed);
}

#[test]
fn a_flood_of_triggers_meets_a_bounded_queue() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    // No agent: every run stays queued.
    let p = Principal::start(&ws, &[], &[("CDKTR_PRINCIPAL_MAX_QUEUED_RUNS", "3")]);
    for _ in 0..3 {
        let ok = ws.run(&["--principal", &p.api, "run", "hello"]);
        assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    }
    let full = ws.run(&["--principal", &p.api, "run", "hello"]);
    assert_eq!(full.code, Some(2), "{}", full.stderr);
    assert!(
        full.stderr.contains("the queue is full") && full.stderr.contains("queue_full"),
        "{}",
        full.stderr
    );
    assert_eq!(Api::connect(&p.api).status().queue_length, 3);
}

#[test]
fn a_frame_over_the_hard_limit_closes_its_connection_before_any_body_is_read() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let mut attacker = TcpStream::connect(tcp_address(&p.api)).unwrap();
    let mut handshake = greeting();
    handshake.extend(ready());
    attacker.write_all(&handshake).unwrap();
    let mut peer_greeting = [0u8; 64];
    attacker.read_exact(&mut peer_greeting).unwrap();
    // 3 GiB: small enough for an allocator with overcommit to grant, far over the limit.
    let mut header = vec![0x02];
    header.extend((3u64 << 30).to_be_bytes());
    attacker.write_all(&header).unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The principal hangs up (after what it had to say in the handshake).
    let mut rest = Vec::new();
    let closed = match attacker.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed,
        "the connection stayed open waiting for a 3 GiB body"
    );
    still_serving(&mut p, &api);
}

#[test]
fn control_requests_beyond_the_cap_are_told_the_principal_is_busy() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let mut p = Principal::start(&ws, &[], &[("CDKTR_FAILPOINTS", "1")]);
    let api = Api::connect(&p.api);
    // The store stalls on the next write (a trigger's), so reads queue behind it.
    api.call(async |c| c.failpoint("store_stall", 4000).await)
        .unwrap();
    let endpoint = p.api.clone();
    let trigger = std::thread::spawn(move || Api::connect(&endpoint).trigger("hello"));
    crate::common::cluster::wait_for(Duration::from_secs(10), "the run to be queued", || {
        (api.status().queue_length == 1).then_some(())
    });
    // Sixteen connections of 25 requests each: under the per-connection limit (128), so the
    // overall one (256) is what holds.
    let sockets: Vec<zmq::Socket> = (0..16)
        .map(|_| {
            let socket = cdktr::transport::socket::context()
                .socket(zmq::DEALER)
                .unwrap();
            socket.connect(&p.api).unwrap();
            socket.set_rcvtimeo(20_000).unwrap();
            socket
        })
        .collect();
    let sent = 400;
    for id in 0..sent {
        let request = format!(
            r#"{{"v":1,"id":{id},"request":{{"family":"control","message":{{"type":"list_runs"}}}}}}"#
        );
        sockets[id % 16].send(request.as_bytes(), 0).unwrap();
    }
    let (mut busy, mut answered) = (0, 0);
    for id in 0..sent {
        let reply = sockets[id % 16]
            .recv_bytes(0)
            .expect("every request is answered");
        let text = String::from_utf8_lossy(&reply).into_owned();
        if text.contains("the principal is busy") {
            busy += 1;
        } else {
            assert!(text.contains("\"runs\""), "{text}");
            answered += 1;
        }
    }
    eprintln!("{answered} answered, {busy} told busy");
    assert!(busy >= sent - 256 - 4, "{busy} busy of {sent}");
    assert!(answered >= 1);
    trigger.join().unwrap();
    still_serving(&mut p, &api);
}

/// Whether the principal has closed `stream` (a read ends or fails) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // the principal's greeting
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn connections_past_the_cap_are_closed_and_the_principal_keeps_serving() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let env = [
        ("CDKTR_PRINCIPAL_MAX_CONNECTIONS", "3"),
        ("CDKTR_PRINCIPAL_HANDSHAKE_TIMEOUT", "1h"),
    ];
    let p = Principal::start(&ws, &[], &env);
    let addr = p.api.trim_start_matches("tcp://").to_owned();
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    // Seven are closed by the cap (the newest); the three first stay.
    let mut open = Vec::new();
    let mut refused = 0;
    for mut stream in idle.drain(..) {
        if closed_within(&mut stream, Duration::from_millis(1500)) {
            refused += 1;
        } else {
            open.push(stream);
        }
    }
    assert_eq!((refused, open.len()), (7, 3));
    let stderr = std::fs::read_to_string(ws.path().join("principal.stderr")).unwrap();
    assert!(stderr.contains("principal.max_connections"), "{stderr}");
    // Once they leave, clients are served again.
    drop(open);
    Api::connect(&p.api).status();
}

#[test]
fn a_connection_that_never_completes_its_handshake_is_closed() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[("CDKTR_PRINCIPAL_HANDSHAKE_TIMEOUT", "1s")]);
    let addr = p.api.trim_start_matches("tcp://").to_owned();
    // Silent, and half a greeting: both are dropped once the handshake time is up.
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial.write_all(&greeting()[..20]).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(30)));
    assert!(closed_within(&mut partial, Duration::from_secs(30)));
    Api::connect(&p.api).status();
}
