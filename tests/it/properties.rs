//! Properties of the two parsers that take outside input: the protocol decoder (bytes from
//! any socket peer) and the workflow loader (any file in the directory). They never panic:
//! every input is answered with a value or an error.
//!
//! `cargo test` runs proptest's default number of cases for each. The long run (README,
//! "Fuzzing") is the same properties with more cases:
//! `PROPTEST_CASES=1000000 cargo test --test it properties`.

use proptest::prelude::*;

use cdktr::model::WorkflowId;
use cdktr::protocol::{decode_request, decode_response};
use cdktr::workflow::parse::parse_workflow;
use cdktr::workflow::shell_words::unsafe_placeholders;

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

const SHELL_BITS: &[&str] = &[
    "{{ params.v }}",
    "{{",
    "}}",
    "'",
    "\"",
    "`",
    "$'",
    "\\",
    "<<",
    "<<-",
    "<<<",
    "EOF",
    "'EOF'",
    "\n",
    "\t",
    " ",
    "#",
    "$(",
    ")",
    "é",
    "\u{1F600}",
    "echo ",
    "-",
    ";",
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

    #[test]
    fn shell_scanner_never_panics(text in assembled(SHELL_BITS)) {
        let _ = unsafe_placeholders(&text);
    }
}
