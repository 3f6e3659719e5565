//! `cdktr-tui`: the terminal cockpit. Workflows (a tree by folder), runs and their tasks,
//! live logs, agents, schedules, the principal and read-only SQL, with every operator action
//! (trigger with a params form, cancel, rerun, pause, reload).
//!
//! Shape: terminal events (a thread: crossterm's reader blocks) and the network worker's
//! results become [`Action`]s; [`App::update`] changes the state and returns [`Command`]s for
//! the worker ([`net::Worker`]), which talks to the principal off the draw loop; [`ui::draw`]
//! only reads the app. The terminal is restored on every exit and on panic.

mod app;
mod form;
mod keys;
mod logs;
#[cfg(test)]
mod logs_tests;
mod net;
mod prompt;
mod state;
mod tree;
pub mod ui;

use std::io::Write;
use std::time::Duration;

use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event as TermEvent, KeyEventKind, MouseEventKind,
};
use ratatui::crossterm::execute;
use tokio::sync::mpsc;

pub use app::{Action, App, Command, Conn, Data, Event, Overlay, Pane, View};
pub use form::{Form, Input};
pub use logs::LogView;

use crate::config::Config;
use crate::transport::Client;

/// How often the clock-driven parts (durations, reconnect seconds) are redrawn.
const TICK: Duration = Duration::from_secs(1);

/// Restores the terminal however the loop ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

/// Runs the cockpit until the user quits.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let client = Client::from_config(&config.client)?;
    own_log()?;
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    // ratatui's hook restores the screen on panic; mouse reporting is turned off first.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        hook(info);
    }));
    execute!(std::io::stdout(), EnableMouseCapture)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    spawn_input(tx.clone());
    let mut worker = net::Worker::start(client, tx);
    let mut app = App::new(config.client.principal.clone());
    app.local = true;
    // The CLI's rule: never with NO_COLOR or TERM=dumb.
    app.colour = crate::cli::output::colour();
    app.own_log = true;
    let mut tick = tokio::time::interval(TICK);
    loop {
        terminal.draw(|frame| ui::draw(frame, &mut app))?;
        let first = tokio::select! {
            a = rx.recv() => match a { Some(a) => a, None => break },
            _ = tick.tick() => Action::Tick,
        };
        // Everything already waiting is applied before the next frame.
        let mut next = Some(first);
        while let Some(action) = next.take() {
            for command in app.update(action) {
                match command {
                    Command::Copy(text) => copy(&text),
                    other => worker.handle(other),
                }
            }
            next = rx.try_recv().ok();
        }
        worker.agents_shown(app.view == View::Agents);
        if app.quit {
            break;
        }
    }
    Ok(())
}

/// The cockpit's own log (connection changes, what its actions did) goes to tui-logger's
/// buffer, shown in the principal view; nothing is written to the terminal.
fn own_log() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tui_logger::init_logger(tui_logger::LevelFilter::Info)?;
    tui_logger::set_default_level(tui_logger::LevelFilter::Info);
    tracing_subscriber::registry()
        .with(tui_logger::TuiTracingSubscriberLayer)
        .try_init()?;
    Ok(())
}

/// Puts `text` on the clipboard through the terminal (OSC 52; tmux passes it on with
/// `set-clipboard on`).
fn copy(text: &str) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\x1b]52;c;{encoded}\x07");
    let _ = out.flush();
}

/// Reads terminal events on a thread (crossterm's reader blocks) and turns them into actions.
fn spawn_input(tx: mpsc::UnboundedSender<Action>) {
    std::thread::spawn(move || loop {
        let action = match event::read() {
            Ok(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => Action::Key(key),
            Ok(TermEvent::Mouse(m)) => match m.kind {
                MouseEventKind::ScrollDown => Action::Scroll(3),
                MouseEventKind::ScrollUp => Action::Scroll(-3),
                _ => continue,
            },
            Ok(TermEvent::Resize(..)) => Action::Redraw,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.send(action).is_err() {
            return;
        }
    });
}

/// `cdktr-tui`'s command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cdktr-tui",
    version,
    about = "cdktr terminal cockpit: workflows, runs, logs, agents and schedules of a principal, \
             live, with every operator action",
    after_help = "Example: cdktr-tui --principal tcp://10.0.0.5:5561\n\
                  Keys: ? in the cockpit lists them (: command, / filter, r trigger, c cancel, \
                  l logs, q quit)"
)]
pub struct TuiCli {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Principal to watch (client.principal).
    #[arg(long, value_name = "ENDPOINT")]
    pub principal: Option<String>,
}
