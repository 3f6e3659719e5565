//! The reporter with several reports in flight, against a principal stand-in (a real libzmq
//! ROUTER speaking the protocol) that stores records strictly in order and, once, stores only
//! half of a report: the reports behind it then start past a gap and store nothing, and the
//! agent must send everything unacknowledged again, so every record is stored exactly once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::reporter::Reporter;
use super::spool::Spool;
use crate::model::{AgentId, RunId, TaskId};
use crate::protocol::agent::{AgentReply, AgentRequest, RunAck, Stream};
use crate::protocol::{codec, Request, Response, ResponseEnvelope, VERSION};
use crate::transport::Client;

const LINES: u64 = 20_000;

/// What the stand-in saw: records stored (in order, each once), and reports that stored
/// nothing because they started past a gap.
struct Seen {
    stored: u64,
    past_a_gap: u32,
}

/// Serves reports until `LINES` records are stored; the second report is stored only in half,
/// and its reply is held until the next report has arrived, so that one is surely in flight.
fn principal(socket: zmq::Socket) -> Seen {
    let mut seen = Seen {
        stored: 0,
        past_a_gap: 0,
    };
    let mut reports = 0;
    let mut held: Option<Vec<Vec<u8>>> = None;
    // Waiting for the report behind the held one ends after a while (the test then fails).
    let _ = socket.set_rcvtimeo(10_000);
    while seen.stored < LINES {
        let frames = socket.recv_multipart(0);
        let Ok(mut frames) = frames else {
            let resent = held.take().map(|reply| socket.send_multipart(reply, 0));
            match resent {
                Some(Ok(())) => continue,
                _ => break,
            }
        };
        let Some(payload) = frames.pop() else {
            continue;
        };
        let Ok(envelope) = codec::decode_request(&payload, 64 * 1024 * 1024) else {
            continue;
        };
        let Request::Agent(AgentRequest::Report { records, .. }) = envelope.request else {
            continue;
        };
        reports += 1;
        let take = if reports == 2 {
            records.len() / 2
        } else {
            records.len()
        };
        let before = seen.stored;
        let mut ack = None;
        for record in records.iter().take(take) {
            if record.seq == seen.stored + 1 {
                seen.stored += 1;
            } else if record.seq > seen.stored + 1 {
                break;
            }
            ack = Some((record.run_id.clone(), record.attempt));
        }
        if seen.stored == before && records.first().is_some_and(|r| r.seq > before + 1) {
            seen.past_a_gap += 1;
        }
        let acks = ack
            .or_else(|| records.first().map(|r| (r.run_id.clone(), r.attempt)))
            .map(|(run_id, attempt)| RunAck {
                run_id,
                attempt,
                up_to: seen.stored,
            })
            .into_iter()
            .collect();
        let reply = ResponseEnvelope {
            v: VERSION,
            id: envelope.id,
            response: Response::Agent(AgentReply::ReportAck { acks }),
        };
        frames.push(codec::encode(&reply));
        if reports == 2 {
            held = Some(frames);
            continue;
        }
        let replies = held.take().into_iter().chain([frames]);
        if replies
            .map(|r| socket.send_multipart(r, 0))
            .any(|sent| sent.is_err())
        {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_stored_in_part_while_others_are_in_flight_loses_and_repeats_nothing() {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::ROUTER).unwrap();
    socket.bind("tcp://127.0.0.1:0").unwrap();
    let endpoint = socket.get_last_endpoint().unwrap().unwrap();
    let stand_in = std::thread::spawn(move || principal(socket));

    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let reporter = Reporter::spawn(
        Client::connect(&endpoint, Duration::from_secs(10)),
        AgentId::new("a@h"),
        Spool::new(dir.path().join("spool.jsonl"), 100_000),
        stop.clone(),
    );
    let recorder = reporter.recorder(RunId::new("r1"), 1, "tok".into());
    let task = TaskId::new("t");
    for i in 0..LINES {
        recorder.line(&task, Stream::Stdout, format!("line {i}"));
    }
    assert!(
        reporter.flush(Duration::from_secs(60)).await,
        "not every record was acknowledged"
    );
    stop.cancel();
    let seen = tokio::task::spawn_blocking(move || stand_in.join().unwrap())
        .await
        .unwrap();
    assert_eq!(seen.stored, LINES);
    assert!(
        seen.past_a_gap > 0,
        "no report arrived past the gap: the partial acknowledgement was never exercised"
    );
}
