//! The logs view's lines: a bounded window of a run's output (its newest stored lines, then
//! live ones, each once; scrolling up past the window's start pages older lines in from the
//! store, and the far end of the window is let go), what of it is shown (a stream, a task),
//! where the view is (following the end or scrolled), and the search.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveTime, Utc};

use crate::protocol::agent::Stream;
use crate::protocol::logs::LogLine;

/// Lines held in memory at most; older ones leave the window (the store keeps them all).
pub const WINDOW: usize = 100_000;

#[derive(Debug, Default)]
pub struct LogView {
    /// The run followed, and its workflow once known.
    pub run: Option<String>,
    pub workflow: Option<String>,
    lines: VecDeque<LogLine>,
    /// Positions in `lines` of the lines shown (the stream filter applied).
    shown: Vec<usize>,
    /// The store holds lines before the window's first (scrolling up pages them in).
    pub earlier: bool,
    /// Lines after the window's last were let go (scrolled far back): `G` reloads the end.
    pub later: bool,
    /// An earlier page was asked for and has not come yet.
    pub loading: bool,
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
        if self.later {
            // The window no longer reaches the end: appending would leave a gap.
            return 0;
        }
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
        self.earlier = true;
        let gone = self.shown.partition_point(|&p| p < n);
        self.shown.drain(..gone);
        for p in &mut self.shown {
            *p -= n;
        }
        self.top = self.top.saturating_sub(gone);
        self.found = self.found.and_then(|f| f.checked_sub(gone));
    }

    /// Adds `lines` older than the window's first (in id order) at its start, keeping the
    /// view on the lines it showed; `more`: the store has older ones still. Beyond the
    /// window's size its newest lines are let go.
    pub fn prepend(&mut self, lines: Vec<LogLine>, more: bool) {
        self.loading = false;
        self.earlier = more;
        let first = self.lines.front().map(|l| l.id);
        let older: Vec<LogLine> = lines
            .into_iter()
            .filter(|l| first.is_none_or(|f| l.id < f))
            .collect();
        let n = older.len();
        if n == 0 {
            return;
        }
        let shown_older: Vec<usize> = older
            .iter()
            .enumerate()
            .filter(|(_, l)| self.admits(l))
            .map(|(i, _)| i)
            .collect();
        for line in older.into_iter().rev() {
            self.lines.push_front(line);
        }
        for p in &mut self.shown {
            *p += n;
        }
        let added = shown_older.len();
        self.shown.splice(0..0, shown_older);
        self.top += added;
        self.found = self.found.map(|f| f + added);
        if self.lines.len() > WINDOW {
            self.lines.truncate(WINDOW);
            let keep = self.shown.partition_point(|&p| p < WINDOW);
            self.shown.truncate(keep);
            self.later = true;
            self.follow = false;
            self.cursor = self.lines.back().map(|l| l.id);
        }
    }

    /// The id of the window's first line, when the store has earlier ones and none is on its
    /// way: the cursor of the page to ask for.
    pub fn wants_earlier(&self, height: usize) -> Option<u64> {
        let at_top = self.first_visible(height) == 0;
        (at_top && self.earlier && !self.loading)
            .then(|| self.lines.front().map(|l| l.id))
            .flatten()
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
