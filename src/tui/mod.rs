//! `cdktr-tui`: the terminal cockpit. This first version is a live, read-only view of the
//! principal: status, runs, the selected run's tasks and the agents.
//!
//! Shape: terminal and timer events become [`Action`]s; [`App::update`] changes state and may
//! ask for a refresh; [`ui::draw`] only reads the app. Requests to the principal run off the UI
//! loop and come back as actions. [`ratatui::try_init`] installs a panic hook that restores
//! the terminal, and a guard restores it on every other exit.

mod app;
pub mod ui;

use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::mpsc;

pub use app::{Action, App, Snapshot};

use crate::config::Config;
use crate::transport::{Client, ClientError};

/// How often the view refreshes by itself.
const REFRESH: Duration = Duration::from_secs(1);

/// Restores the terminal however the loop ends.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the cockpit until the user quits.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _guard = TerminalGuard;
    let client = Client::from_config(&config.client)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    spawn_input(tx.clone());
    let mut app = App::new(config.client.principal.clone());
    spawn_fetch(&client, &app, tx.clone());
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        terminal.draw(|frame| ui::draw(frame, &app))?;
        let action = tokio::select! {
            a = rx.recv() => match a { Some(a) => a, None => break },
            _ = tick.tick() => Action::Refresh,
        };
        if app.update(action) {
            spawn_fetch(&client, &app, tx.clone());
        }
        if app.quit {
            break;
        }
    }
    Ok(())
}

/// Reads terminal events on a thread (crossterm's reader blocks) and turns keys into actions.
fn spawn_input(tx: mpsc::UnboundedSender<Action>) {
    std::thread::spawn(move || loop {
        match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                if tx.send(Action::Key(key.code)).is_err() {
                    return;
                }
            }
            Ok(Event::Resize(..)) => {
                if tx.send(Action::Redraw).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    });
}

/// Fetches a snapshot off the UI loop; it comes back as [`Action::Loaded`].
fn spawn_fetch(client: &Client, app: &App, tx: mpsc::UnboundedSender<Action>) {
    let client = client.clone();
    let selected = app.selected_run_id();
    tokio::spawn(async move {
        let result = fetch(&client, selected).await.map_err(|e| e.to_string());
        let _ = tx.send(Action::Loaded(Box::new(result)));
    });
}

async fn fetch(client: &Client, selected: Option<String>) -> Result<Snapshot, ClientError> {
    let status = client.status().await?;
    let runs = client.runs(None, None, 100).await?;
    let agents = client.agents().await?;
    let selected = selected.or_else(|| runs.first().map(|r| r.run_id.to_string()));
    let detail = match selected {
        Some(run_id) => client.run(&run_id).await.ok(),
        None => None,
    };
    Ok(Snapshot {
        status,
        runs,
        agents,
        detail,
    })
}

/// `cdktr-tui`'s command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cdktr-tui",
    version,
    about = "cdktr terminal cockpit: workflows, runs, logs and agents of a principal, live",
    after_help = "Example: cdktr-tui --principal tcp://10.0.0.5:5561"
)]
pub struct TuiCli {
    /// Configuration file (else $CDKTR_CONFIG, ./cdktr.toml, /etc/cdktr/cdktr.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Principal to watch (client.principal).
    #[arg(long, value_name = "ENDPOINT")]
    pub principal: Option<String>,
}
