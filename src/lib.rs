//! cdktr: a distributed workflow orchestrator.
//!
//! Map of the modules:
//! - [`model`]: ids, workflow and task definitions, schedules (pure data, no I/O);
//! - [`workflow`]: load a directory of YAML files into validated workflows, with diagnostics;
//! - [`config`]: the resolved configuration (defaults < file < environment < flags);
//! - [`protocol`]: the typed, versioned wire protocol and its codec;
//! - [`auth`]: CURVE keys, credentials, the keys file and the ZAP handler;
//! - [`transport`]: the request/reply client over ZeroMQ with timeouts and reconnects;
//! - [`store`]: DuckDB history behind one owner thread;
//! - [`principal`]: the coordinator daemon (queue, registry, dispatch, API server);
//! - [`agent`]: the worker daemon (DAG runner, executors, reporter);
//! - [`runtime`] and [`daemon`]: logging, signals, sd-notify, daemon entry points;
//! - [`listener`]: event listeners (trigger client API, webhook, file arrival);
//! - [`cli`]: the `cdktr` command line, one file per command family;
//! - [`tui`]: the `cdktr-tui` cockpit (actions, app state, drawing).
//!
//! The binaries under `src/bin` and `src/main.rs` only parse arguments and call into here.

pub mod agent;
pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod listener;
pub mod model;
pub mod principal;
pub mod protocol;
pub mod runtime;
pub mod store;
pub mod transport;
pub mod tui;
pub mod workflow;
