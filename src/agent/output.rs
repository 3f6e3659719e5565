//! Reading a child's output stream as lines: any volume, any bytes, bounded memory.
//!
//! Invalid UTF-8 is replaced (U+FFFD), never fatal. A line longer than the limit is split into
//! pieces at character boundaries, each piece but the last ending with [`SPLIT_MARKER`], so no
//! byte is dropped silently.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line kept in one piece.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Appended to each piece of a split line except the last.
pub const SPLIT_MARKER: &str = " [cdktr: line too long, continued on the next line]";

/// Calls `emit` for every line of `reader` until end of stream.
pub async fn read_lines<R, F>(reader: R, max: usize, mut emit: F) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    F: FnMut(String),
{
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if !line.is_empty() {
                emit(finish(&line));
            }
            return Ok(());
        }
        let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => {
                line.extend_from_slice(&available[..at]);
                (at + 1, true)
            }
            None => {
                line.extend_from_slice(available);
                (available.len(), false)
            }
        };
        reader.consume(taken);
        while line.len() > max {
            let cut = char_boundary(&line, max);
            let mut piece = String::from_utf8_lossy(&line[..cut]).into_owned();
            piece.push_str(SPLIT_MARKER);
            emit(piece);
            line.drain(..cut);
        }
        if complete {
            emit(finish(&line));
            line.clear();
        }
    }
}

fn finish(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// The largest cut `<= max` that does not split a UTF-8 sequence (for valid UTF-8).
fn char_boundary(bytes: &[u8], max: usize) -> usize {
    let mut cut = max;
    // Continuation bytes look like 0b10xx_xxxx; back up at most 3 of them.
    while cut > max.saturating_sub(3) && cut > 0 && bytes.get(cut).is_some_and(|b| b & 0xC0 == 0x80)
    {
        cut -= 1;
    }
    if cut == 0 {
        max
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(input, max, |l| out.push(l)).await.unwrap();
        out
    }

    #[tokio::test]
    async fn splits_on_newlines_and_keeps_a_final_partial_line() {
        assert_eq!(lines(b"a\nb\r\n\nc", 100).await, ["a", "b", "", "c"]);
        assert!(lines(b"", 100).await.is_empty());
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced() {
        assert_eq!(
            lines(b"ok \xff\xfe end\n", 100).await,
            ["ok \u{fffd}\u{fffd} end"]
        );
    }

    #[tokio::test]
    async fn long_lines_are_split_with_a_marker_and_nothing_is_lost() {
        let long = "x".repeat(25);
        let out = lines(format!("{long}\nshort\n").as_bytes(), 10).await;
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], format!("{}{SPLIT_MARKER}", "x".repeat(10)));
        assert_eq!(out[1], format!("{}{SPLIT_MARKER}", "x".repeat(10)));
        assert_eq!(out[2], "x".repeat(5));
        assert_eq!(out[3], "short");
    }

    #[tokio::test]
    async fn splitting_respects_character_boundaries() {
        let text = "ééééé\n"; // 2 bytes each
        let out = lines(text.as_bytes(), 5).await;
        let joined: String = out
            .iter()
            .map(|l| l.trim_end_matches(SPLIT_MARKER))
            .collect();
        assert_eq!(joined, "ééééé");
        assert!(out.iter().all(|l| !l.contains('\u{fffd}')), "{out:?}");
    }
}
