//! The integration test binary: real executables, real files. One binary, shared harness.

mod common;
mod config_cli;
mod workflow_cli;
