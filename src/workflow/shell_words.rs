//! Where a `{{ params.x }}` placeholder stands in a `!Shell` script. A value is substituted as
//! one single-quoted word, which is exactly its bytes only where the shell is not already
//! inside quotes: within `'...'` the value's own quotes would end the string, within `"..."`,
//! backquotes, `$'...'` or a here-document that expands, `$(...)` in the value would run. Such
//! placeholders are refused when the workflow loads, with the way to write them instead.

/// A placeholder in a quoting context where substitution would not be safe.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsafe {
    pub name: String,
    /// Where it stands: "single quotes", "double quotes", ...
    pub context: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Plain,
    Single,
    Double,
    Backquote,
    AnsiC,
    Comment,
}

/// A here-document whose body starts on the next line.
struct HereDoc {
    delimiter: String,
    expands: bool,
    strip_tabs: bool,
}

/// Every placeholder of `script` that stands inside quotes or an expanding here-document.
pub fn unsafe_placeholders(script: &str) -> Vec<Unsafe> {
    let mut found = Vec::new();
    let bytes = script.as_bytes();
    let mut state = State::Plain;
    let mut pending: Vec<HereDoc> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Byte offsets: every position compared below is an ASCII byte, so multibyte text
        // passes through untouched (and is never sliced in the middle).
        let close = bytes[i..]
            .starts_with(b"{{")
            .then(|| bytes[i..].windows(2).position(|w| w == b"}}"))
            .flatten();
        if let Some(e) = close {
            let end = i + e + 2;
            let inner = String::from_utf8_lossy(&bytes[i + 2..i + e]);
            if let Some(name) = inner.trim().strip_prefix("params.") {
                let context = match state {
                    State::Plain | State::Comment => None,
                    State::Single => Some("single quotes"),
                    State::Double => Some("double quotes"),
                    State::Backquote => Some("backquotes"),
                    State::AnsiC => Some("$'...' quotes"),
                };
                if let Some(context) = context {
                    found.push(Unsafe {
                        name: name.trim().to_owned(),
                        context,
                    });
                }
            }
            i = end;
            continue;
        }
        let c = bytes[i];
        match (state, c) {
            (State::Plain, b'\\') | (State::Double | State::Backquote | State::AnsiC, b'\\') => {
                i += 2;
                continue;
            }
            (State::Plain, b'\'') => state = State::Single,
            (State::Plain, b'"') => state = State::Double,
            (State::Plain, b'`') => state = State::Backquote,
            (State::Plain, b'$') if bytes.get(i + 1) == Some(&b'\'') => {
                state = State::AnsiC;
                i += 2;
                continue;
            }
            (State::Plain, b'#') if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                state = State::Comment;
            }
            (State::Plain, b'<')
                if bytes[i..].starts_with(b"<<") && !bytes[i..].starts_with(b"<<<") =>
            {
                let (doc, next) = here_doc(script, i + 2);
                pending.extend(doc);
                i = next;
                continue;
            }
            (State::Single, b'\'') | (State::Double, b'"') | (State::Backquote, b'`') => {
                state = State::Plain
            }
            (State::AnsiC, b'\'') => state = State::Plain,
            (State::Comment, b'\n') => state = State::Plain,
            _ => {}
        }
        if c == b'\n' && state == State::Plain && !pending.is_empty() {
            i = skip_bodies(script, i + 1, std::mem::take(&mut pending), &mut found);
            continue;
        }
        i += 1;
    }
    found
}

/// Reads a here-document operator's delimiter word starting at `at` (after `<<`); returns it
/// and where the scan goes on.
fn here_doc(script: &str, mut at: usize) -> (Option<HereDoc>, usize) {
    let bytes = script.as_bytes();
    let strip_tabs = bytes.get(at) == Some(&b'-');
    if strip_tabs {
        at += 1;
    }
    while bytes.get(at).is_some_and(|b| *b == b' ' || *b == b'\t') {
        at += 1;
    }
    let start = at;
    while bytes
        .get(at)
        .is_some_and(|b| !b.is_ascii_whitespace() && !b";&|<>()".contains(b))
    {
        at += 1;
    }
    let word = &script[start..at];
    if word.is_empty() {
        return (None, at);
    }
    // Any quoting in the delimiter makes the body literal.
    let expands = !word.contains(['\'', '"', '\\']);
    let delimiter = word.replace(['\'', '"', '\\'], "");
    let doc = HereDoc {
        delimiter,
        expands,
        strip_tabs,
    };
    (Some(doc), at)
}

/// Skips the bodies of `docs` (one after another) from `at`, recording placeholders inside an
/// expanding one; returns where the script goes on.
fn skip_bodies(script: &str, mut at: usize, docs: Vec<HereDoc>, found: &mut Vec<Unsafe>) -> usize {
    for doc in docs {
        while at < script.len() {
            let end = script[at..].find('\n').map_or(script.len(), |e| at + e);
            let line = &script[at..end];
            at = (end + 1).min(script.len());
            let line = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if line == doc.delimiter {
                break;
            }
            if doc.expands {
                for name in crate::model::placeholders(line) {
                    found.push(Unsafe {
                        name,
                        context: "a here-document that expands (quote its delimiter: <<'EOF')",
                    });
                }
            }
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contexts(script: &str) -> Vec<&'static str> {
        unsafe_placeholders(script)
            .into_iter()
            .map(|u| u.context)
            .collect()
    }

    #[test]
    fn bare_placeholders_are_safe_wherever_the_shell_is_unquoted() {
        for script in [
            "echo {{ params.v }}",
            "printf '%s\\n' {{ params.v }} \"done\"",
            "x=$(basename {{ params.v }}) && echo \"$x\"",
            "# a comment with '{{ params.v }}\necho {{ params.v }}",
            "cat <<'EOF'\nliteral {{ params.v }} here\nEOF\necho {{ params.v }}",
            "echo it\\'s {{ params.v }}",
        ] {
            assert!(
                contexts(script).is_empty(),
                "{script:?}: {:?}",
                contexts(script)
            );
        }
    }

    #[test]
    fn placeholders_inside_quotes_or_expanding_here_documents_are_found() {
        assert_eq!(contexts("echo '{{ params.v }}'"), ["single quotes"]);
        assert_eq!(contexts("echo \"x {{ params.v }}\""), ["double quotes"]);
        assert_eq!(contexts("echo `echo {{ params.v }}`"), ["backquotes"]);
        assert_eq!(contexts("echo $'{{ params.v }}'"), ["$'...' quotes"]);
        let doc = unsafe_placeholders("cat <<EOF\nvalue: {{ params.v }}\nEOF\necho {{ params.w }}");
        assert_eq!(doc.len(), 1);
        assert_eq!(doc[0].name, "v");
        assert!(doc[0].context.contains("here-document"));
        assert_eq!(
            contexts("cat <<-END\n\t{{ params.v }}\n\tEND\n").len(),
            1,
            "a tab-stripped body expands too"
        );
        // Quotes closed and reopened around the placeholder: both sides are seen.
        assert_eq!(
            contexts("echo 'a' {{ params.v }} \"b\""),
            Vec::<&str>::new()
        );
        assert_eq!(contexts("echo \"a\" \"{{ params.v }}\""), ["double quotes"]);
    }
}
