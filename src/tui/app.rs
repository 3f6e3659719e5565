//! The cockpit's state and its one mutation entry point, [`App::update`].

use ratatui::crossterm::event::KeyCode;

use crate::protocol::control::{AgentView, RunDetail, RunSummary, StatusView};

/// Everything fetched from the principal in one refresh.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub status: StatusView,
    pub runs: Vec<RunSummary>,
    pub agents: Vec<AgentView>,
    /// The selected run with its tasks.
    pub detail: Option<RunDetail>,
}

#[derive(Debug)]
pub enum Action {
    Key(KeyCode),
    Refresh,
    Redraw,
    Loaded(Box<Result<Snapshot, String>>),
}

pub struct App {
    pub endpoint: String,
    pub snapshot: Option<Snapshot>,
    /// The last fetch error, shown until a fetch succeeds.
    pub error: Option<String>,
    /// Index into `snapshot.runs`.
    pub selected: usize,
    pub quit: bool,
}

impl App {
    pub fn new(endpoint: String) -> App {
        App {
            endpoint,
            snapshot: None,
            error: None,
            selected: 0,
            quit: false,
        }
    }

    pub fn selected_run_id(&self) -> Option<String> {
        let snapshot = self.snapshot.as_ref()?;
        snapshot
            .runs
            .get(self.selected)
            .map(|r| r.run_id.to_string())
    }

    fn run_count(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.runs.len())
    }

    /// Applies an action; true when the view needs fresh data from the principal.
    pub fn update(&mut self, action: Action) -> bool {
        match action {
            Action::Key(KeyCode::Char('q') | KeyCode::Esc) => {
                self.quit = true;
                false
            }
            Action::Key(KeyCode::Down | KeyCode::Char('j')) => {
                if self.selected + 1 < self.run_count() {
                    self.selected += 1;
                }
                true
            }
            Action::Key(KeyCode::Up | KeyCode::Char('k')) => {
                self.selected = self.selected.saturating_sub(1);
                true
            }
            Action::Key(KeyCode::Home | KeyCode::Char('g')) => {
                self.selected = 0;
                true
            }
            Action::Key(KeyCode::Char('r')) | Action::Refresh => true,
            Action::Key(_) | Action::Redraw => false,
            Action::Loaded(result) => {
                match *result {
                    Ok(snapshot) => {
                        // Keep the same run selected when new runs arrive on top.
                        let keep = self.selected_run_id();
                        self.selected = keep
                            .and_then(|id| {
                                snapshot.runs.iter().position(|r| r.run_id.as_str() == id)
                            })
                            .unwrap_or(0)
                            .min(snapshot.runs.len().saturating_sub(1));
                        self.snapshot = Some(snapshot);
                        self.error = None;
                    }
                    Err(e) => self.error = Some(e),
                }
                false
            }
        }
    }
}
