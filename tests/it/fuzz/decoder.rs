//! The protocol decoder: requests as the principal reads them, replies as clients and agents
//! read them, and live-stream events as subscribers read them.

use cdktr::protocol::codec::{decode_request, decode_response, encode};
use cdktr::protocol::logs::LogEvent;

use super::{guarded, inputs, mutate, seed, Progress, Rng};

/// One valid request of every kind, and replies, as the wire carries them.
fn corpus() -> Vec<Vec<u8>> {
    let ts = "2026-12-02T08:00:00.000000Z";
    let agent = r#"{"id":"web1@h","name":"web1","host":"h","slots":4,"labels":{"gpu":"1"},"version":"1.0","instance":"x"}"#;
    let record = |event: &str| {
        format!(r#"{{"run_id":"01J","attempt":1,"token":"t","seq":7,"ts":"{ts}","event":{event}}}"#)
    };
    let requests = [
        r#"{"type":"trigger","workflow":"etl.daily","params":{"day":"2026-12-01"},"trigger":"event:webhook"}"#.to_owned(),
        r#"{"type":"list_runs","workflow":"etl","status":"FAILED","limit":10}"#.into(),
        r#"{"type":"show_run","run_id":"01J"}"#.into(),
        r#"{"type":"logs","run_id":"01J","task":"a","after":18446744073709551615,"limit":5000}"#.into(),
        format!(r#"{{"type":"query_logs","workflow":"w","since":"{ts}","until":"{ts}","after":1}}"#),
        r#"{"type":"list_agents"}"#.into(),
        r#"{"type":"status"}"#.into(),
        r#"{"type":"show_workflow","id":"etl.daily"}"#.into(),
        r#"{"type":"set_schedule_paused","workflow":"w","paused":true}"#.into(),
        r#"{"type":"schedule_history","workflow":"w","limit":5}"#.into(),
        r#"{"type":"failpoint","name":"store_stall","duration_ms":10}"#.into(),
        format!(r#"{{"type":"audit","since":"{ts}","actor":"ops","action":"trigger","limit":3}}"#),
        format!(r#"{{"type":"register","agent":{agent},"running":[{{"run_id":"01J","attempt":1,"token":"t"}}]}}"#),
        r#"{"type":"heartbeat","agent_id":"web1@h","running":[],"free_slots":3}"#.into(),
        r#"{"type":"pull_work","agent_id":"web1@h","free_slots":2}"#.into(),
        format!(
            r#"{{"type":"report","agent_id":"web1@h","records":[{},{},{}]}}"#,
            record(r#"{"kind":"task","task_id":"a","status":"FAILED","exit_code":-9,"reason":"killed"}"#),
            record(r#"{"kind":"log","task_id":"a","stream":"stderr","line_no":3,"line":"boom \u00e9"}"#),
            record(r#"{"kind":"run_finished","status":"COMPLETED"}"#),
        ),
        r#"{"type":"deregister","agent_id":"web1@h"}"#.into(),
    ];
    let mut corpus: Vec<Vec<u8>> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let family = if i < 12 { "control" } else { "agent" };
            format!(r#"{{"v":1,"id":{i},"request":{{"family":"{family}","message":{r}}}}}"#)
                .into_bytes()
        })
        .collect();
    corpus.push(
        br#"{"v":1,"id":3,"response":{"family":"error","reply":{"code":"invalid","message":"m"}}}"#
            .to_vec(),
    );
    corpus.push(br#"{"v":1,"id":4,"response":{"family":"agent","reply":{"type":"report_ack","acks":[{"run_id":"r","attempt":1,"up_to":9}]}}}"#.to_vec());
    corpus.push(
        format!(r#"{{"event":"line","run_id":"r","workflow_id":"w","task_id":"a","stream":"stdout","seq":1,"ts":"{ts}","line":"x"}}"#)
            .into_bytes(),
    );
    corpus
}

#[test]
fn the_protocol_decoder_survives_shaped_inputs() {
    let corpus = corpus();
    // The corpus is valid: mutations start from messages that get all the way through.
    for request in corpus.iter().take(17) {
        let decoded = decode_request(request, 1 << 22);
        assert!(
            decoded.is_ok(),
            "{}: {:?}",
            String::from_utf8_lossy(request),
            decoded.err()
        );
    }
    let total = inputs();
    let mut rng = Rng::new(seed("decoder"));
    let mut progress = Progress::new("decoder", total);
    let (mut json, mut requests) = (0u64, 0u64);
    for _ in 0..total {
        let base = rng.pick(&corpus).clone();
        let input = if rng.one_in(2) {
            super::tweak(&mut rng, &base)
        } else {
            mutate(&mut rng, &base, &corpus)
        };
        guarded("decoder", &input, || {
            if serde_json::from_slice::<serde_json::Value>(&input).is_ok() {
                json += 1;
            }
            if let Ok(envelope) = decode_request(&input, 1 << 22) {
                requests += 1;
                // What the principal would store or echo decodes again to the same thing
                // (times are normalised to the wire's precision on the first pass).
                let once = encode(&envelope);
                let again = decode_request(&once, 1 << 22).map(|e| encode(&e));
                assert_eq!(
                    again.ok(),
                    Some(once),
                    "a decoded request re-encodes stably"
                );
            }
            let _ = decode_response(&input);
            let _ = serde_json::from_slice::<LogEvent>(&input);
        });
        progress.tick();
    }
    eprintln!("fuzz decoder: {json} inputs were JSON, {requests} decoded as requests");
    // Shaped inputs reach the decoder's deeper checks, not only its JSON parser.
    assert!(
        json * 10 > total && requests * 20 > total,
        "{json} JSON, {requests} requests"
    );
}
