//! A problem found in a workflow file, located as precisely as the parser allows.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    /// The task the problem is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            severity: Severity::Error,
            task: None,
            message: message.into(),
        }
    }

    pub fn warning(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, message)
        }
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `file:line:col: error: task `t`: message`, the format editors and CI annotators understand.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}: ", self.severity)?;
        if let Some(task) = &self.task {
            write!(f, "task `{task}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo: similar by
/// Jaro-Winkler (good for long words and shared prefixes), or within a small edit distance
/// counting a transposition as one edit (good for short words: `dya` -> `day`).
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let max_edits = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(word, c),
                strsim::osa_distance(word, c),
                c,
            )
        })
        .filter(|(score, edits, _)| *score >= 0.8 || *edits <= max_edits)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, _, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_file_line_column_severity_and_task() {
        let d = Diagnostic::error("wf/a.yml", "boom").at(3, 7).task("fetch");
        assert_eq!(d.to_string(), "wf/a.yml:3:7: error: task `fetch`: boom");
        let w = Diagnostic::warning("b.yml", "hm");
        assert_eq!(w.to_string(), "b.yml: warning: hm");
    }

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["name", "depends", "config", "description"];
        assert_eq!(suggest("dependencies", keys), Some("depends"));
        assert_eq!(suggest("depend", keys), Some("depends"));
        assert_eq!(suggest("nmae", keys), Some("name"));
        assert_eq!(suggest("zzzzzz", keys), None);
        assert_eq!(suggest("dya", ["day", "who"]), Some("day"));
        assert_eq!(suggest("x", ["day", "who"]), None);
    }
}
