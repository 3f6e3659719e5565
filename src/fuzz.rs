//! Fuzz targets (proptest-driven) for the two parsers that take outside input: the protocol
//! decoder (bytes from any socket peer) and the workflow loader (any file in the directory).
//! The property is that they never panic: every input is answered with a value or an error.
//!
//! `cargo test` runs a few hundred cases each. The recorded long run (README, "Fuzzing"):
//! `PROPTEST_CASES=1000000 cargo test --lib fuzz -- --ignored`.

use proptest::prelude::*;

use crate::model::WorkflowId;
use crate::protocol::{decode_request, decode_response};
use crate::workflow::parse::parse_workflow;

/// Fragments that make random text look like our inputs, so the fuzzer gets past the first
/// syntax error and into the interesting code.
const JSON_BITS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"v\"",
    "1",
    "99",
    "-1",
    "1e400",
    "\"id\"",
    "\"request\"",
    "\"family\"",
    "\"control\"",
    "\"agent\"",
    "\"message\"",
    "\"type\"",
    "\"trigger\"",
    "\"report\"",
    "\"records\"",
    "\"workflow\"",
    "\"params\"",
    "\"seq\"",
    "\"event\"",
    "\"kind\"",
    "\"log\"",
    "null",
    "true",
    "\"\\u0000\"",
    "\"\u{1F600}\"",
    "18446744073709551616",
    "\"2025-01-01T00:00:00Z\"",
];

const YAML_BITS: &[&str] = &[
    "name: x\n",
    "tasks:\n",
    "  a:\n",
    "    name: A\n",
    "    depends: [b]\n",
    "    config: !Shell\n",
    "      script: echo\n",
    "    config: !Subprocess\n",
    "      cmd: ls\n",
    "      args: [",
    "]\n",
    "cron: \"* * * * *\"\n",
    "cron: \"61 * *\"\n",
    "timezone: Mars/Base\n",
    "params:\n",
    "  p: {default: x}\n",
    "{{ params.p }}",
    "&a ",
    "*a ",
    "<<: *a\n",
    "!Nope\n",
    "- ",
    "? ",
    "|\n",
    ">\n",
    "\t",
    "'",
    "\"",
    "\u{FEFF}",
    "---\n",
    "...\n",
    "overlap: queue\n",
    "catchup: all\n",
    "start_time: 2025-13-45\n",
];

fn assembled(bits: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(bits), 0..40).prop_map(|parts| parts.concat())
}

fn decode_everything(bytes: &[u8]) {
    let _ = decode_request(bytes, 1 << 20);
    let _ = decode_request(bytes, 16);
    let _ = decode_response(bytes);
}

fn load(text: &str) {
    let _ = parse_workflow(
        WorkflowId::new("fuzz"),
        std::path::Path::new("fuzz.yml"),
        text,
    );
}

proptest! {
    #[test]
    fn decoder_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_json_like_text(text in assembled(JSON_BITS)) {
        decode_everything(text.as_bytes());
    }

    #[test]
    fn loader_never_panics_on_text(text in "\\PC{0,400}") {
        load(&text);
    }

    #[test]
    fn loader_never_panics_on_yaml_like_text(text in assembled(YAML_BITS)) {
        load(&text);
    }
}

/// The long run, with case counts from `PROPTEST_CASES`; prints how many inputs it tried.
#[test]
#[ignore = "long: run with PROPTEST_CASES=1000000 cargo test --lib fuzz -- --ignored"]
fn long_fuzz_run() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let started = std::time::Instant::now();
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..512), |b| {
            decode_everything(&b);
            Ok(())
        })
        .expect("decoder, bytes");
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(&assembled(JSON_BITS), |t| {
            decode_everything(t.as_bytes());
            Ok(())
        })
        .expect("decoder, JSON-like");
    let mut runner = proptest::test_runner::TestRunner::new(config.clone());
    runner
        .run(&"\\PC{0,400}", |t| {
            load(&t);
            Ok(())
        })
        .expect("loader, text");
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&assembled(YAML_BITS), |t| {
            load(&t);
            Ok(())
        })
        .expect("loader, YAML-like");
    println!(
        "fuzz: 4 targets x {cases} inputs, no panic, in {:.0?}",
        started.elapsed()
    );
}
