//! The cockpit's state and its one mutation entry point, [`App::update`]: terminal keys and
//! what the network worker brings become changes here, and requests for the worker
//! ([`Command`]s) come out. Drawing (`ui`) only reads the app.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::logs::LogView;
use super::state::{words_match, WARNINGS_KEPT};
pub use super::state::{Action, Command, Conn, Data, Event, Message, Overlay, Pane, View};
use crate::protocol::control::{AgentView, RunSummary, ScheduleView};

pub struct App {
    pub endpoint: String,
    pub view: View,
    /// Views to go back to with Esc.
    pub back: Vec<View>,
    pub conn: Conn,
    pub data: Data,
    /// Selection per list view.
    pub selected: BTreeMap<View, usize>,
    /// Filter text per list view (`/`).
    pub filters: BTreeMap<View, String>,
    pub pane: Pane,
    /// The task selected in the run detail pane.
    pub task: usize,
    /// The run whose detail was asked for last.
    pub watched: Option<String>,
    /// Folders folded in the workflow tree.
    pub folded: BTreeSet<String>,
    pub logs: LogView,
    pub overlay: Option<Overlay>,
    pub message: Option<Message>,
    /// The view's body height at the last draw (paging, log scrolling).
    pub page: usize,
    /// The clock drawing uses (fixed in tests).
    pub now: DateTime<Utc>,
    /// Times in the local zone (else UTC).
    pub local: bool,
    /// Colours on (off with NO_COLOR or TERM=dumb).
    pub colour: bool,
    /// Show the cockpit's own log (tui-logger's global buffer) in the principal view.
    pub own_log: bool,
    pub quit: bool,
}

impl App {
    pub fn new(endpoint: String) -> App {
        App {
            endpoint,
            view: View::Runs,
            back: Vec::new(),
            conn: Conn::Connecting,
            data: Data::default(),
            selected: BTreeMap::new(),
            filters: BTreeMap::new(),
            pane: Pane::List,
            task: 0,
            watched: None,
            folded: BTreeSet::new(),
            logs: LogView::default(),
            overlay: None,
            message: None,
            page: 20,
            now: Utc::now(),
            local: false,
            colour: true,
            own_log: false,
            quit: false,
        }
    }

    /// Applies an action; returns what the network worker should do.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Key(key) => super::keys::handle(self, key),
            Action::Scroll(delta) => {
                if self.view == View::Logs {
                    self.logs.scroll(delta, self.page);
                    self.earlier_logs()
                } else {
                    self.move_selection(delta)
                }
            }
            Action::Tick => {
                self.now = Utc::now();
                Vec::new()
            }
            Action::Redraw => Vec::new(),
            Action::Net(event) => self.apply(event),
        }
    }

    fn apply(&mut self, event: Event) -> Vec<Command> {
        match event {
            Event::Status(status) => {
                self.conn = Conn::Up;
                self.data.status = Some(*status);
            }
            Event::Lost(error) => {
                let since = match &self.conn {
                    Conn::Lost { since, .. } => *since,
                    _ => Instant::now(),
                };
                self.conn = Conn::Lost { since, error };
            }
            Event::Role(role) => self.data.role = Some(role),
            Event::Runs(runs) => {
                let keep = self.selected_run().map(|r| r.run_id.to_string());
                self.data.runs = runs;
                let at = keep.and_then(|id| {
                    self.visible_runs()
                        .iter()
                        .position(|r| r.run_id.as_str() == id)
                });
                if let Some(i) = at {
                    self.selected.insert(View::Runs, i);
                }
                self.clamp();
                return self.watch_for_view();
            }
            Event::Agents(agents) => self.data.agents = agents,
            Event::Workflows(listing) => {
                self.data.workflows = Some(*listing);
                self.clamp();
                return self.watch_for_view();
            }
            Event::Schedules(schedules) => self.data.schedules = schedules,
            Event::Detail(detail) => {
                if self.watched.as_deref() == Some(detail.summary.run_id.as_str()) {
                    self.data.detail = Some(*detail);
                }
            }
            Event::Slots(workflow, slots) => self.data.slots = Some((workflow, slots)),
            Event::Warnings(notices) => {
                let last = self.data.warnings.last().map(|n| n.seq);
                if notices
                    .first()
                    .is_some_and(|n| last.is_some_and(|l| n.seq <= l))
                {
                    // A restarted principal counts from 1 again.
                    self.data.warnings.clear();
                }
                self.data.warnings.extend(notices);
                let excess = self.data.warnings.len().saturating_sub(WARNINGS_KEPT);
                self.data.warnings.drain(..excess);
            }
            Event::Lines {
                run,
                workflow,
                lines,
                complete,
                earlier,
            } => {
                if self.logs.run.as_deref() == Some(run.as_str()) {
                    if workflow.is_some() {
                        self.logs.workflow = workflow;
                    }
                    if self.logs.is_empty() && earlier {
                        self.logs.earlier = true;
                    }
                    self.logs.extend(lines);
                    self.logs.complete |= complete;
                }
            }
            Event::Earlier { run, lines, more } => {
                if self.logs.run.as_deref() == Some(run.as_str()) {
                    self.logs.prepend(lines, more);
                }
            }
            Event::Query(result) => {
                self.data.query = Some(result);
                self.selected.insert(View::Query, 0);
            }
            Event::Done(result) => {
                self.message = Some(match result {
                    Ok(text) => Message { text, error: false },
                    Err(text) => Message { text, error: true },
                });
            }
        }
        self.clamp();
        Vec::new()
    }

    /// Keeps every selection inside its list.
    pub fn clamp(&mut self) {
        for view in [
            View::Workflows,
            View::Runs,
            View::Agents,
            View::Schedules,
            View::Query,
        ] {
            let len = self.list_len(view);
            let entry = self.selected.entry(view).or_insert(0);
            *entry = (*entry).min(len.saturating_sub(1));
        }
        let tasks = self.data.detail.as_ref().map_or(0, |d| d.tasks.len());
        self.task = self.task.min(tasks.saturating_sub(1));
    }

    pub fn list_len(&self, view: View) -> usize {
        match view {
            View::Workflows => super::tree::rows(self).len(),
            View::Runs => self.visible_runs().len(),
            View::Agents => self.visible_agents().len(),
            View::Schedules => self.visible_schedules().len(),
            View::Query => match &self.data.query {
                Some(Ok(result)) => result.rows.len(),
                _ => 0,
            },
            View::Logs | View::Principal => 0,
        }
    }

    pub fn selection(&self, view: View) -> usize {
        self.selected.get(&view).copied().unwrap_or(0)
    }

    /// Moves the current list's selection (or the task in the detail pane).
    pub fn move_selection(&mut self, delta: isize) -> Vec<Command> {
        if self.view == View::Runs && self.pane == Pane::Detail {
            let tasks = self.data.detail.as_ref().map_or(0, |d| d.tasks.len());
            self.task = self
                .task
                .saturating_add_signed(delta)
                .min(tasks.saturating_sub(1));
            return Vec::new();
        }
        let len = self.list_len(self.view);
        let at = self.selection(self.view);
        self.selected.insert(
            self.view,
            at.saturating_add_signed(delta).min(len.saturating_sub(1)),
        );
        self.watch_for_view()
    }

    /// What the view shows in detail, asked for when it changed: the selected run (runs),
    /// the selected workflow's latest run (workflows: its DAG's colours), the selected
    /// schedule's slots.
    pub fn watch_for_view(&mut self) -> Vec<Command> {
        match self.view {
            View::Runs => self.watch_selected_run(),
            View::Workflows => {
                let latest = super::tree::selected_workflow(self).and_then(|id| {
                    let run = self
                        .data
                        .runs
                        .iter()
                        .find(|r| r.workflow_id.as_str() == id)?;
                    Some(run.run_id.to_string())
                });
                self.watch(latest)
            }
            View::Schedules => vec![Command::WatchSchedule(
                self.selected_schedule().map(|s| s.workflow_id.to_string()),
            )],
            _ => Vec::new(),
        }
    }

    /// Asks for the selected run's detail when it is not the one shown.
    pub fn watch_selected_run(&mut self) -> Vec<Command> {
        let id = self.selected_run().map(|r| r.run_id.to_string());
        self.watch(id)
    }

    fn watch(&mut self, id: Option<String>) -> Vec<Command> {
        if id == self.watched {
            return Vec::new();
        }
        if self.data.detail.as_ref().map(|d| d.summary.run_id.as_str()) != id.as_deref() {
            self.data.detail = None;
            self.task = 0;
        }
        self.watched = id.clone();
        vec![Command::WatchRun(id)]
    }

    /// The view's filter text, lower case.
    pub fn filter(&self, view: View) -> String {
        self.filters
            .get(&view)
            .map(|f| f.to_lowercase())
            .unwrap_or_default()
    }

    /// Runs passing the filter: words that must each appear in workflow, status, trigger,
    /// run id or agent.
    pub fn visible_runs(&self) -> Vec<&RunSummary> {
        let filter = self.filter(View::Runs);
        if filter.trim().is_empty() {
            return self.data.runs.iter().collect();
        }
        self.data
            .runs
            .iter()
            .filter(|r| {
                let text = format!(
                    "{} {} {} {} {}",
                    r.workflow_id,
                    r.status.as_str(),
                    r.trigger,
                    r.run_id,
                    r.agent.as_ref().map(|a| a.as_str()).unwrap_or("")
                )
                .to_lowercase();
                words_match(&filter, &text)
            })
            .collect()
    }

    pub fn visible_agents(&self) -> Vec<&AgentView> {
        let filter = self.filter(View::Agents);
        self.data
            .agents
            .iter()
            .filter(|a| {
                let text = format!("{} {} {}", a.agent_id, a.state, a.host).to_lowercase();
                words_match(&filter, &text)
            })
            .collect()
    }

    pub fn visible_schedules(&self) -> Vec<&ScheduleView> {
        let filter = self.filter(View::Schedules);
        self.data
            .schedules
            .iter()
            .filter(|s| s.workflow_id.as_str().to_lowercase().contains(&filter))
            .collect()
    }

    pub fn selected_run(&self) -> Option<&RunSummary> {
        self.visible_runs().get(self.selection(View::Runs)).copied()
    }

    pub fn selected_schedule(&self) -> Option<&ScheduleView> {
        self.visible_schedules()
            .get(self.selection(View::Schedules))
            .copied()
    }

    /// The run an action applies to: the one in detail or selected (runs), the followed one
    /// (logs).
    pub fn target_run(&self) -> Option<String> {
        match self.view {
            View::Logs => self.logs.run.clone(),
            _ => self.selected_run().map(|r| r.run_id.to_string()),
        }
    }

    /// Switches view, remembering where to go back to.
    pub fn open(&mut self, view: View) -> Vec<Command> {
        if view != self.view {
            self.back.push(self.view);
            if self.back.len() > 32 {
                self.back.remove(0);
            }
            self.view = view;
            self.pane = Pane::List;
        }
        self.watch_for_view()
    }

    /// Opens the logs view on `run` (only `task`'s lines, with one), following it.
    pub fn open_logs(&mut self, run: &str, task: Option<String>) -> Vec<Command> {
        if self.logs.run.as_deref() != Some(run) {
            self.logs = LogView::of(run);
        }
        if self.logs.task != task {
            self.logs.set_task(task);
        }
        let mut commands = self.open(View::Logs);
        commands.push(Command::FollowLogs(Some(run.to_owned())));
        commands
    }

    /// Asks for the page before the logs window when the view has reached its start.
    pub fn earlier_logs(&mut self) -> Vec<Command> {
        let (Some(run), Some(before)) = (self.logs.run.clone(), self.logs.wants_earlier(self.page))
        else {
            return Vec::new();
        };
        self.logs.loading = true;
        vec![Command::LogsBefore { run, before }]
    }

    /// Follows the logs' run again from its end (a fresh window, the same filters).
    pub fn refollow(&mut self) -> Vec<Command> {
        let Some(run) = self.logs.run.clone() else {
            return Vec::new();
        };
        let (task, stream, wrap) = (self.logs.task.clone(), self.logs.stream, self.logs.wrap);
        self.logs = LogView::of(&run);
        self.logs.task = task;
        self.logs.stream = stream;
        self.logs.wrap = wrap;
        vec![Command::FollowLogs(Some(run))]
    }

    /// How long the principal has not answered, when it has not.
    pub fn lost_for(&self) -> Option<Duration> {
        match &self.conn {
            Conn::Lost { since, .. } => Some(since.elapsed()),
            _ => None,
        }
    }

    pub fn say(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
        });
    }
}
