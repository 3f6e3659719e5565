//! Shape errors from the YAML parser (unknown key, missing field, wrong type, unknown task
//! type) as diagnostics with a location and a "did you mean".

use std::path::Path;

use super::{TASK_TYPES, UNKNOWN_TYPE_MARKER};
use crate::workflow::diagnostic::{suggest, Diagnostic};

/// Turns a serde/YAML error into a diagnostic with a clean message and a hint where we have one.
pub(super) fn shape_error(file: &Path, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let location = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize));
    let mut message = e.without_snippet().to_string();
    if let Some((line, col)) = location {
        let suffix = format!(" at line {line}, column {col}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    if let Some(found) = message
        .find(UNKNOWN_TYPE_MARKER)
        .map(|at| message[at + UNKNOWN_TYPE_MARKER.len()..].to_owned())
    {
        message = unknown_type_message(text, location, &found);
    } else if let Some(hint) = unknown_field_hint(&message) {
        message.push_str(&hint);
    } else if message.starts_with("unexpected end of input") {
        message = "unexpected end of file (unclosed bracket, brace or quote?)".to_owned();
    }
    let d = Diagnostic::error(file, message);
    match location {
        Some((line, col)) => d.at(line, col),
        None => d,
    }
}

/// An unknown tag is not seen by serde (it reports the first key of the mapping instead), so
/// look in the source just before that key for the tag the user wrote.
fn unknown_type_message(text: &str, location: Option<(usize, usize)>, found: &str) -> String {
    let expected = "expected !Subprocess, !UvPython or !Shell";
    let tag = location.and_then(|(line, col)| tag_before(text, line, col));
    match tag {
        Some(tag) => match suggest(&tag, TASK_TYPES.iter().copied()) {
            Some(s) => format!("unknown task type `!{tag}`: did you mean `!{s}`?"),
            None => format!("unknown task type `!{tag}`: {expected}"),
        },
        None => format!(
            "task `config` has no task type tag (found key `{found}`): start it with a tag, \
             {expected}"
        ),
    }
}

/// The `!Tag` token closest before the 1-based `line`/`col` position, if nothing but whitespace,
/// a `config:` key or comments lie between.
fn tag_before(text: &str, line: usize, col: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut row = line.checked_sub(1)?;
    let mut upto = col.saturating_sub(1);
    loop {
        let content = lines.get(row)?;
        let head: String = content.chars().take(upto).collect();
        let head = head.split(" #").next().unwrap_or_default();
        if let Some(at) = head.rfind('!') {
            let tag: String = head[at + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return (!tag.is_empty()).then_some(tag);
        }
        if head.trim_end().ends_with(':') || row == 0 {
            return None;
        }
        row -= 1;
        upto = usize::MAX;
    }
}

/// `unknown field `x`, expected one of a, b` gets `: did you mean `a`?` when x is close to one.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .trim_start_matches(',')
        .trim()
        .strip_prefix("expected one of ")
        .or_else(|| {
            rest.trim_start_matches(',')
                .trim()
                .strip_prefix("expected ")
        })?;
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .collect();
    suggest(field, candidates).map(|s| format!(" (did you mean `{s}`?)"))
}
