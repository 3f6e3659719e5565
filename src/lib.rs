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

/// Keeps DuckDB out of a binary that does not use the store (the agent, the CLI, the
/// cockpit); invoke it once at the top level of the binary's main file.
///
/// The `duckdb` crate links, into every binary of a package that depends on it, a small object
/// that registers DuckDB's bundled extensions before `main` by calling
/// `duckdb_register_static_extensions`. That one call pulls half of DuckDB into the binary and
/// costs every start several milliseconds of relocations and symbol lookups. Defined here, in
/// the binary's own object file, the symbol resolves to this no-op and the linker never takes
/// DuckDB's definition (nor anything it needs). The principal does not invoke this: its store
/// needs the extensions. `tests/it/layout.rs` checks which binaries contain DuckDB.
#[macro_export]
macro_rules! without_duckdb {
    () => {
        /// DuckDB's extension registration, a no-op: this binary has no database.
        #[no_mangle]
        pub extern "C" fn duckdb_register_static_extensions() -> i32 {
            0
        }
    };
}
