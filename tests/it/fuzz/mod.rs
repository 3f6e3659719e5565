//! Fuzzing the three parsers that face the network: the protocol decoder, the transport
//! handshake (with the ZAP handler behind it) and the webhook's HTTP parser. Inputs are
//! shaped to get past the first bytes: valid messages, greetings, frames and requests, then
//! mutated (lengths, numbers, strings, nesting, bits, splices), so most reach deep code.
//!
//! Each test runs `CDKTR_FUZZ_INPUTS` inputs (3,000 by default, so the suite stays quick);
//! the long run is the same tests with a million each (see SECURITY.md):
//!
//! ```sh
//! CDKTR_FUZZ_INPUTS=1000000 cargo test --test it fuzz:: -- --nocapture --test-threads 1
//! ```
//!
//! The seed is printed; `CDKTR_FUZZ_SEED=N` replays a run. A panicking input is printed
//! (hex) before the test fails.

mod decoder;
mod handshake;
mod webhook;

use std::time::Instant;

/// How many inputs each target runs.
pub fn inputs() -> u64 {
    std::env::var("CDKTR_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// The run's seed (printed, so a failure can be replayed).
pub fn seed(target: &str) -> u64 {
    let seed = std::env::var("CDKTR_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("fuzz {target}: {} inputs, CDKTR_FUZZ_SEED={seed}", inputs());
    seed
}

/// Prints progress every tenth of the run, and the rate at the end.
pub struct Progress {
    target: &'static str,
    total: u64,
    done: u64,
    started: Instant,
}

impl Progress {
    pub fn new(target: &'static str, total: u64) -> Progress {
        Progress {
            target,
            total,
            done: 0,
            started: Instant::now(),
        }
    }

    pub fn tick(&mut self) {
        self.done += 1;
        if self.total >= 10 && self.done.is_multiple_of(self.total / 10) {
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "fuzz {}: {}/{} inputs, {:.0}/s",
                self.target,
                self.done,
                self.total,
                self.done as f64 / secs
            );
        }
    }
}

/// xorshift64*: a small, fast, seedable generator for test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Up to `max` random bytes.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "-0.0",
    "0.5",
    "NaN",
    "99999999999999999999999999999999999999999999999999",
];

const STRINGS: &[&str] = &[
    "",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "../../etc/passwd",
    "$(touch PWNED)",
    "'; touch PWNED; '",
    "\u{202e}é\u{fffd}",
    "a@b@c",
    "-rf",
];

/// A mutation of `input`: one to four byte-level or structure-aware changes; `corpus`
/// supplies material to splice in.
pub fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => out[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => {
                out[at.min(len - 1)] = *rng.pick(&[0, 1, 0x7f, 0x80, 0xff, b'"', b'\\', b'{', b'['])
            }
            2 => {
                let end = (at + 1 + rng.below(16)).min(len);
                out.drain(at..end);
            }
            3 if len > 0 => {
                let end = (at + 1 + rng.below(32)).min(len);
                let copy = out[at.min(end)..end].to_vec();
                let place = rng.below(out.len() + 1);
                out.splice(place..place, copy);
            }
            4 => {
                let extra = rng.some_bytes(16);
                out.splice(at..at, extra);
            }
            5 => out.truncate(at),
            6 => {
                let other = rng.pick(corpus);
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            7 => replace_run(rng, &mut out, |b| b.is_ascii_digit(), NUMBERS),
            8 => replace_between_quotes(rng, &mut out),
            9 => {
                let depth = 1 + rng.below(300);
                let open = if rng.one_in(2) { b'[' } else { b'{' };
                out.splice(at..at, std::iter::repeat_n(open, depth));
            }
            _ => {
                let long = vec![b'a'; rng.below(100_000)];
                out.splice(at..at, long);
            }
        }
    }
    out
}

/// A mutation that keeps JSON well-formed more often than not: one number, string or
/// literal replaced with an awkward one.
pub fn tweak(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(2) {
        match rng.below(3) {
            0 => replace_run(rng, &mut out, |b| b.is_ascii_digit(), NUMBERS),
            1 => replace_between_quotes(rng, &mut out),
            _ => replace_run(
                rng,
                &mut out,
                |b| b.is_ascii_lowercase(),
                &["true", "null", "[]", "{}", "1", "\"x\""],
            ),
        }
    }
    out
}

/// Replaces one run of bytes matching `class` with one of `with`.
fn replace_run(rng: &mut Rng, out: &mut Vec<u8>, class: impl Fn(u8) -> bool, with: &[&str]) {
    let starts: Vec<usize> = (0..out.len())
        .filter(|&i| class(out[i]) && (i == 0 || !class(out[i - 1])))
        .collect();
    if starts.is_empty() {
        return;
    }
    let start = *rng.pick(&starts);
    let end = (start..out.len())
        .find(|&i| !class(out[i]))
        .unwrap_or(out.len());
    let text = rng.pick(with).as_bytes().to_vec();
    out.splice(start..end, text);
}

/// Replaces the contents of one JSON string with an awkward one.
fn replace_between_quotes(rng: &mut Rng, out: &mut Vec<u8>) {
    let quotes: Vec<usize> = (0..out.len()).filter(|&i| out[i] == b'"').collect();
    if quotes.len() < 2 {
        return;
    }
    let i = rng.below(quotes.len() - 1);
    let (start, end) = (quotes[i] + 1, quotes[i + 1]);
    let text = rng.pick(STRINGS).as_bytes().to_vec();
    out.splice(start..end, text);
}

/// Runs `check` on `input`; a panic is reported with the input before the test fails.
pub fn guarded(target: &str, input: &[u8], check: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        let hex: String = input
            .iter()
            .take(4096)
            .map(|b| format!("{b:02x}"))
            .collect();
        eprintln!(
            "fuzz {target}: panicking input ({} bytes): {hex}",
            input.len()
        );
        std::panic::resume_unwind(panic);
    }
}
