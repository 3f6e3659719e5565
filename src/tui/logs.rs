//! The logs view's lines: a bounded window of a run's output (history first, then live lines,
//! each once), what of it is shown (a stream, or both), where the view is (following the end
//! or scrolled), and the search.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveTime, Utc};

use crate::protocol::agent::Stream;
use crate::protocol::logs::LogLine;

/// Lines held in memory at most; older ones leave the window (the store keeps them all).
pub const WINDOW: usize = 200_000;

#[derive(Debug, Default)]
pub struct LogView {
    /// The run followed, and its workflow once known.
    pub run: Option<String>,
    pub workflow: Option<String>,
    lines: VecDeque<LogLine>,
    /// Positions in `lines` of the lines shown (the stream filter applied).
    shown: Vec<usize>,
    /// Lines that left the window at its start.
    pub dropped: u64,
    /// The largest line id held: lines at or below it are duplicates.
    cursor: Option<u64>,
    /// Only this stream's lines are shown.
    pub stream: Option<Stream>,
    /// Only this task's lines are shown.
    pub task: Option<String>,
    pub wrap: bool,
    /// Keep the end in view as lines arrive. Scrolling up pauses it; `G`/End resumes.
    pub follow: bool,
    /// First shown line in view while not following (an index into `shown`).
    pub top: usize,
    pub search: Option<String>,
    /// The shown line the last search step landed on.
    pub found: Option<usize>,
    /// Every line of an ended run is here.
    pub complete: bool,
}

impl LogView {
    /// A fresh view of `run`, following its end.
    pub fn of(run: &str) -> LogView {
        LogView {
            run: Some(run.to_owned()),
            follow: true,
            ..LogView::default()
        }
    }

    pub fn len(&self) -> usize {
        self.shown.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    /// The `i`th shown line.
    pub fn get(&self, i: usize) -> Option<&LogLine> {
        self.shown.get(i).and_then(|&p| self.lines.get(p))
    }

    /// Adds lines in id order; ones already held are skipped. Returns how many were new.
    pub fn extend(&mut self, lines: impl IntoIterator<Item = LogLine>) -> usize {
        let mut added = 0;
        for line in lines {
            if self.cursor.is_some_and(|c| line.id <= c) {
                continue;
            }
            self.cursor = Some(line.id);
            if self.admits(&line) {
                self.shown.push(self.lines.len());
            }
            self.lines.push_back(line);
            added += 1;
        }
        if self.lines.len() > WINDOW {
            self.drop_front(self.lines.len() - WINDOW + WINDOW / 10);
        }
        added
    }

    fn drop_front(&mut self, n: usize) {
        self.lines.drain(..n);
        self.dropped += n as u64;
        let gone = self.shown.partition_point(|&p| p < n);
        self.shown.drain(..gone);
        for p in &mut self.shown {
            *p -= n;
        }
        self.top = self.top.saturating_sub(gone);
        self.found = self.found.and_then(|f| f.checked_sub(gone));
    }

    fn admits(&self, line: &LogLine) -> bool {
        self.stream.is_none_or(|s| s == line.stream)
            && self
                .task
                .as_deref()
                .is_none_or(|t| t == line.task_id.as_str())
    }

    /// Shows only `task`'s lines (or every task's).
    pub fn set_task(&mut self, task: Option<String>) {
        self.task = task;
        self.refilter();
    }

    /// Cycles what is shown: both streams, stdout only, stderr only.
    pub fn toggle_stream(&mut self) {
        self.stream = match self.stream {
            None => Some(Stream::Stdout),
            Some(Stream::Stdout) => Some(Stream::Stderr),
            Some(Stream::Stderr) => None,
        };
        self.refilter();
    }

    /// Recomputes what is shown, keeping the line at the top of the view in view.
    fn refilter(&mut self) {
        let keep = self.get(self.top).map(|l| l.id);
        self.shown = (0..self.lines.len())
            .filter(|&p| self.admits(&self.lines[p]))
            .collect();
        self.found = None;
        self.top = keep
            .map(|id| self.shown.partition_point(|&p| self.lines[p].id < id))
            .unwrap_or(0)
            .min(self.len().saturating_sub(1));
    }

    /// The first shown line in a view `height` lines tall.
    pub fn first_visible(&self, height: usize) -> usize {
        if self.follow {
            self.len().saturating_sub(height)
        } else {
            self.top.min(self.len().saturating_sub(1))
        }
    }

    /// Scrolls by `delta` lines (negative: up). Scrolling up stops following; reaching the
    /// end does not resume it (only `G`/End does, as in `less +F`).
    pub fn scroll(&mut self, delta: isize, height: usize) {
        let from = self.first_visible(height);
        let last_top = self.len().saturating_sub(height);
        let to = from.saturating_add_signed(delta).min(last_top);
        if delta < 0 {
            self.follow = false;
        }
        self.top = to;
    }

    pub fn to_end(&mut self) {
        self.follow = true;
    }

    pub fn to_start(&mut self) {
        self.follow = false;
        self.top = 0;
    }

    /// Moves to the next (or previous) shown line containing the search text (ignoring
    /// case), from the one after the current match or the top of the view; wraps around.
    /// False when no line matches.
    pub fn step_search(&mut self, forward: bool, height: usize) -> bool {
        let Some(needle) = self.search.as_ref().map(|s| s.to_lowercase()) else {
            return false;
        };
        let n = self.len();
        if n == 0 || needle.is_empty() {
            return false;
        }
        let start = self.found.unwrap_or_else(|| self.first_visible(height));
        let matches = |i: usize| {
            self.get(i)
                .is_some_and(|l| l.line.to_lowercase().contains(&needle))
        };
        let first = if self.found.is_some() { 1 } else { 0 };
        for step in first..=n {
            let i = if forward {
                (start + step) % n
            } else {
                (start + n - step % n) % n
            };
            if matches(i) {
                self.found = Some(i);
                self.follow = false;
                self.top = i.saturating_sub(height / 2);
                return true;
            }
        }
        false
    }

    /// Moves the view to the first shown line printed at or after `time` (HH:MM[:SS], in
    /// `zone`'s day of the first line, or RFC 3339). False when the text is not a time.
    pub fn jump_to_time(&mut self, text: &str, local: bool) -> bool {
        let at = match DateTime::parse_from_rfc3339(text.trim()) {
            Ok(t) => t.with_timezone(&Utc),
            Err(_) => {
                let Some(time) = ["%H:%M:%S", "%H:%M"]
                    .iter()
                    .find_map(|f| NaiveTime::parse_from_str(text.trim(), f).ok())
                else {
                    return false;
                };
                let Some(day) = self.get(0).map(|l| l.ts) else {
                    return true;
                };
                match at_time_of_day(day, time, local) {
                    Some(t) => t,
                    None => return false,
                }
            }
        };
        let i = self.shown.partition_point(|&p| self.lines[p].ts < at);
        self.follow = false;
        self.top = i.min(self.len().saturating_sub(1));
        true
    }
}

/// `time` on the day of `day` (in the local zone when `local`, else UTC).
fn at_time_of_day(day: DateTime<Utc>, time: NaiveTime, local: bool) -> Option<DateTime<Utc>> {
    if local {
        let date = day.with_timezone(&chrono::Local).date_naive();
        date.and_time(time)
            .and_local_timezone(chrono::Local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    } else {
        Some(day.date_naive().and_time(time).and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunId, TaskId, WorkflowId};

    pub fn line(id: u64, stream: Stream, text: &str) -> LogLine {
        LogLine {
            id,
            run_id: RunId::new("01R"),
            workflow_id: WorkflowId::new("w"),
            task_id: TaskId::new("t"),
            attempt: 1,
            stream,
            seq: id,
            ts: DateTime::from_timestamp(1_700_000_000 + id as i64, 0).unwrap_or_default(),
            line: text.to_owned(),
            try_no: 1,
        }
    }

    #[test]
    fn each_line_is_held_once_in_id_order() {
        let mut view = LogView::of("01R");
        assert_eq!(
            view.extend((1..=5).map(|i| line(i, Stream::Stdout, "x"))),
            5
        );
        // The live stream repeats lines the store already gave.
        assert_eq!(
            view.extend((4..=7).map(|i| line(i, Stream::Stdout, "x"))),
            2
        );
        assert_eq!(view.len(), 7);
        assert_eq!(view.get(6).map(|l| l.id), Some(7));
    }

    #[test]
    fn the_window_drops_its_oldest_lines() {
        let mut view = LogView::of("01R");
        view.extend((1..=WINDOW as u64 + 1).map(|i| line(i, Stream::Stdout, "x")));
        assert!(view.len() <= WINDOW);
        assert_eq!(view.dropped as usize + view.len(), WINDOW + 1);
        assert_eq!(
            view.get(view.len() - 1).map(|l| l.id),
            Some(WINDOW as u64 + 1)
        );
    }

    #[test]
    fn streams_toggle_and_search_wraps() {
        let mut view = LogView::of("01R");
        view.extend([
            line(1, Stream::Stdout, "alpha"),
            line(2, Stream::Stderr, "ERROR beta"),
            line(3, Stream::Stdout, "gamma error"),
        ]);
        view.toggle_stream();
        assert_eq!(view.len(), 2, "stdout only");
        view.toggle_stream();
        assert_eq!(view.len(), 1, "stderr only");
        view.toggle_stream();
        assert_eq!(view.len(), 3, "both");
        view.search = Some("error".into());
        assert!(view.step_search(true, 10));
        let first = view.found;
        assert!(view.step_search(true, 10));
        assert_ne!(view.found, first, "the next match");
        assert!(view.step_search(true, 10));
        assert_eq!(view.found, first, "wrapped around");
        assert!(!view.follow, "a search stops following");
        view.search = Some("nowhere".into());
        assert!(!view.step_search(false, 10));
    }

    #[test]
    fn scrolling_up_pauses_following_until_the_end_key() {
        let mut view = LogView::of("01R");
        view.extend((1..=100).map(|i| line(i, Stream::Stdout, "x")));
        assert_eq!(view.first_visible(10), 90);
        view.scroll(-5, 10);
        assert!(!view.follow);
        assert_eq!(view.first_visible(10), 85);
        view.extend((101..=110).map(|i| line(i, Stream::Stdout, "x")));
        assert_eq!(
            view.first_visible(10),
            85,
            "new lines do not move a paused view"
        );
        view.to_end();
        assert_eq!(view.first_visible(10), 100);
        assert!(view.jump_to_time(&line(50, Stream::Stdout, "").ts.to_rfc3339(), false));
        assert_eq!(view.first_visible(10), 49);
        assert!(!view.jump_to_time("not a time", false));
    }
}
