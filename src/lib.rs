//! cdktr: a distributed workflow orchestrator.
//!
//! Map of the modules:
//! - [`model`]: ids, workflow and task definitions, schedules (pure data, no I/O);
//! - [`workflow`]: load a directory of YAML files into validated workflows, with diagnostics;
//! - [`config`]: the resolved configuration (defaults < file < environment < flags);
//! - [`cli`]: the `cdktr` command line, one file per command family.
//!
//! The binaries under `src/bin` and `src/main.rs` only parse arguments and call into here.

pub mod cli;
pub mod config;
pub mod model;
pub mod workflow;
