//! The integration test binary: real executables, real files. One binary, shared harness.

mod audit;
mod auth;
mod cancel;
mod common;
mod config_cli;
mod controls;
mod daemon;
mod durability;
mod execution;
mod fuzz;
mod hostile;
mod injection;
mod layout;
mod listeners;
mod local;
mod operations;
mod properties;
mod protocol;
mod readme;
mod regression;
mod rerun;
mod schedule;
mod tui;
mod uv;
mod wire;
mod workflow_cli;
