//! The log window: de-duplication, its bound, paging back, streams, search, scrolling.

use chrono::DateTime;

use super::logs::{LogView, WINDOW};
use crate::model::{RunId, TaskId, WorkflowId};
use crate::protocol::agent::Stream;
use crate::protocol::logs::LogLine;

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
    // The newest lines stay, and the view knows older ones are in the store.
    let first = (WINDOW + 1 - view.len() + 1) as u64;
    assert_eq!(view.get(0).map(|l| l.id), Some(first));
    assert!(view.earlier);
    assert_eq!(
        view.get(view.len() - 1).map(|l| l.id),
        Some(WINDOW as u64 + 1)
    );
}

#[test]
fn scrolling_back_pages_older_lines_in_and_keeps_the_view() {
    let mut view = LogView::of("01R");
    view.extend((101..=200).map(|i| line(i, Stream::Stdout, "x")));
    view.earlier = true;
    view.scroll(-1000, 10);
    assert_eq!(view.first_visible(10), 0);
    assert_eq!(view.wants_earlier(10), Some(101));
    view.loading = true;
    assert_eq!(view.wants_earlier(10), None, "one page at a time");
    view.prepend(
        (51..=100).map(|i| line(i, Stream::Stdout, "x")).collect(),
        true,
    );
    assert_eq!(view.len(), 150);
    assert_eq!(
        view.get(view.first_visible(10)).map(|l| l.id),
        Some(101),
        "same lines in view"
    );
    view.prepend(
        (1..=50).map(|i| line(i, Stream::Stdout, "x")).collect(),
        false,
    );
    view.to_start();
    assert_eq!(view.wants_earlier(10), None, "the start of the output");
    assert_eq!(view.get(0).map(|l| l.id), Some(1));
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
