//! What the cockpit holds and exchanges: its views, the principal's data as last read, what
//! the network worker brings back ([`Event`]) and what it is asked to do ([`Command`]).

use std::collections::BTreeMap;
use std::time::Instant;

use ratatui::crossterm::event::KeyEvent;

use super::form::{Form, Input};
use crate::model::Role;
use crate::protocol::control::{
    AgentView, Notice, RunDetail, RunSummary, ScheduleView, SlotRecord, StatusView,
};
use crate::protocol::logs::LogLine;
use crate::protocol::query::QueryResult;
use crate::transport::WorkflowListing;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum View {
    Workflows,
    Runs,
    Logs,
    Agents,
    Schedules,
    Principal,
    Query,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Workflows,
        View::Runs,
        View::Logs,
        View::Agents,
        View::Schedules,
        View::Principal,
        View::Query,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Workflows => "workflows",
            View::Runs => "runs",
            View::Logs => "logs",
            View::Agents => "agents",
            View::Schedules => "schedules",
            View::Principal => "principal",
            View::Query => "query",
        }
    }
}

/// What the principal said last, list by list.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub status: Option<StatusView>,
    pub runs: Vec<RunSummary>,
    pub agents: Vec<AgentView>,
    pub workflows: Option<WorkflowListing>,
    pub schedules: Vec<ScheduleView>,
    /// The run the runs view shows in detail.
    pub detail: Option<RunDetail>,
    /// The selected schedule's slot history: (workflow, slots).
    pub slots: Option<(String, Vec<SlotRecord>)>,
    /// Who the principal takes the cockpit for.
    pub role: Option<Role>,
    pub query: Option<Result<QueryResult, String>>,
    /// The principal's newest warnings and errors, oldest first.
    pub warnings: Vec<Notice>,
}

/// Principal warnings the cockpit keeps.
pub const WARNINGS_KEPT: usize = 200;

/// The connection as the worker last saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Conn {
    Connecting,
    Up,
    /// No answer since `since`; the worker keeps trying.
    Lost {
        since: Instant,
        error: String,
    },
}

/// What the network worker brings back.
#[derive(Debug)]
pub enum Event {
    Status(Box<StatusView>),
    Lost(String),
    Role(Role),
    Runs(Vec<RunSummary>),
    Agents(Vec<AgentView>),
    Workflows(Box<WorkflowListing>),
    Schedules(Vec<ScheduleView>),
    Detail(Box<RunDetail>),
    Slots(String, Vec<SlotRecord>),
    /// The principal's warnings after those already received.
    Warnings(Vec<Notice>),
    /// Lines of the followed run (`run`), in id order; `complete` once the run ended and
    /// every line was read.
    Lines {
        run: String,
        workflow: Option<String>,
        lines: Vec<LogLine>,
        complete: bool,
        /// With the first lines: the store has older ones.
        earlier: bool,
    },
    /// Older lines of the followed run, paged back (`more`: older ones remain).
    Earlier {
        run: String,
        lines: Vec<LogLine>,
        more: bool,
    },
    Query(Result<QueryResult, String>),
    /// An action's outcome for the status line: Ok(message) or Err(the principal's error).
    Done(Result<String, String>),
}

#[derive(Debug)]
pub enum Action {
    Key(KeyEvent),
    /// Mouse wheel: lines to move (negative up).
    Scroll(isize),
    Tick,
    Redraw,
    Net(Event),
}

/// Requests for the network worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Trigger {
        workflow: String,
        params: BTreeMap<String, String>,
    },
    Cancel(String),
    Rerun {
        run: String,
        failed_only: bool,
    },
    Pause {
        workflow: String,
        paused: bool,
    },
    Reload,
    Query(String),
    /// The run shown in detail (refreshed as it changes).
    WatchRun(Option<String>),
    /// The schedule whose slot history is shown.
    WatchSchedule(Option<String>),
    /// Follow this run's output (none: stop).
    FollowLogs(Option<String>),
    /// The page of the followed run's lines before this id.
    LogsBefore {
        run: String,
        before: u64,
    },
    /// Copy to the terminal's clipboard (OSC 52): done by the draw loop, not the network.
    Copy(String),
}

/// An open overlay; keys go to it first.
#[derive(Debug)]
pub enum Overlay {
    Help,
    Command(Input),
    Filter(Input),
    Search(Input),
    JumpTime(Input),
    Form(Box<Form>),
    Confirm { question: String, then: Command },
}

/// A line in the status bar: what an action did, or why it could not.
#[derive(Clone, Debug)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// Which pane of a two-pane view has the keys (Tab switches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pane {
    #[default]
    List,
    Detail,
}

/// Whether `text` contains every word of `filter` (both lower case): how `/` filters a list.
pub fn words_match(filter: &str, text: &str) -> bool {
    filter.split_whitespace().all(|w| text.contains(w))
}
