//! The webhook's HTTP parser and handler, in process over an in-memory byte stream, with the
//! real listener code (`serve_connection`) and a real principal behind it: valid trigger
//! requests (lengths, chunked bodies, both token headers, pipelining) mutated in their
//! methods, paths, headers, declared lengths and bodies.

use std::sync::Arc;
use std::time::Duration;

use cdktr::listener::webhook::serve_connection;
use cdktr::transport::Client;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{inputs, mutate, seed, Progress, Rng};
use crate::common::cluster::Principal;
use crate::common::{valid_workflow, Workspace};

const TOKEN: &str = "s3cret-token";

fn corpus() -> Vec<Vec<u8>> {
    let post = |headers: &str, body: &str| {
        format!(
            "POST /trigger/hello HTTP/1.1\r\nHost: cdktr\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    vec![
        post(&auth, r#"{"day":"2026-12-01","n":3,"ok":true}"#),
        post(&format!("X-Cdktr-Token: {TOKEN}\r\nContent-Type: application/json\r\n"), ""),
        post(&auth, "[1,2]"),
        format!(
            "POST /trigger/hello HTTP/1.1\r\nHost: c\r\n{auth}Transfer-Encoding: chunked\r\n\r\n9\r\n{{\"a\":\"b\"}}\r\n0\r\n\r\n"
        )
        .into_bytes(),
        format!("POST /trigger/nope HTTP/1.0\r\n{auth}Content-Length: 1099511627776\r\n\r\n{{}}").into_bytes(),
        format!("GET /trigger/hello HTTP/1.1\r\n{auth}\r\n").into_bytes(),
        format!("POST /other HTTP/1.1\r\nExpect: 100-continue\r\n{auth}Content-Length: 2\r\n\r\n{{}}").into_bytes(),
        [post(&auth, "{}"), post(&auth, r#"{"x":"y"}"#)].concat(),
    ]
}

/// Serves `input` on a fresh in-memory connection; the status code of the first answer.
async fn exchange(input: Vec<u8>, client: Client) -> Option<u16> {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve_connection(far, client, Some(Arc::from(TOKEN))));
    let (mut reader, mut writer) = tokio::io::split(near);
    let (_, reply) = tokio::join!(
        async {
            let _ = writer.write_all(&input).await;
            let _ = writer.shutdown().await;
        },
        async {
            let mut reply = Vec::new();
            let _ = reader.read_to_end(&mut reply).await;
            reply
        }
    );
    let ended = tokio::time::timeout(Duration::from_secs(30), server).await;
    assert!(
        matches!(ended, Ok(Ok(_))),
        "the connection ended (no hang, no panic)"
    );
    let text = String::from_utf8_lossy(&reply);
    if reply.is_empty() {
        return None;
    }
    assert!(text.starts_with("HTTP/1."), "{text}");
    text.get(9..12)?.parse().ok()
}

#[test]
fn the_webhook_parser_survives_shaped_requests() {
    let ws = Workspace::new();
    ws.write("wf/hello.yml", &valid_workflow("Hello"));
    let p = Principal::start(&ws, &[], &[("CDKTR_PRINCIPAL_MAX_QUEUED_RUNS", "100")]);
    let corpus = corpus();
    let total = inputs();
    let mut rng = Rng::new(seed("webhook"));
    // Inputs are made as they are consumed: a million of them would not fit in memory.
    let generated = (0..total).map(move |_| {
        let base = rng.pick(&corpus).clone();
        if rng.one_in(4) {
            base
        } else {
            mutate(&mut rng, &base, &corpus)
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let statuses = rt.block_on(async {
        let client = Client::connect(&p.api, Duration::from_secs(10));
        let mut progress = Progress::new("webhook", total);
        let mut statuses = std::collections::BTreeMap::<Option<u16>, u64>::new();
        let mut answers = futures::stream::iter(generated)
            .map(|input| exchange(input, client.clone()))
            .buffer_unordered(32);
        while let Some(status) = answers.next().await {
            *statuses.entry(status).or_default() += 1;
            progress.tick();
        }
        statuses
    });
    eprintln!("fuzz webhook: statuses {statuses:?}");
    // Shaped requests get past the parser to the token check and on to the principal.
    let reached = |code| statuses.get(&Some(code)).copied().unwrap_or(0);
    assert!(reached(202) + reached(503) > 0, "{statuses:?}");
    assert!(reached(400) > 0 && reached(401) > 0, "{statuses:?}");
    assert!(p.daemon.ready.contains("ready"));
}
