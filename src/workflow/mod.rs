//! The definition layer: a directory of YAML files turned into validated [`Workflow`]s.
//!
//! - [`load`] scans a directory tree and derives workflow ids from paths;
//! - [`parse`] turns one file's text into a workflow or diagnostics with file, line and column;
//! - [`dag`] orders a task graph and names the cycle when there is one;
//! - [`diagnostic`] is the problem report shared by the CLI and the principal.
//!
//! [`Workflow`]: crate::model::Workflow

pub mod dag;
pub mod diagnostic;
pub mod load;
pub mod parse;
pub mod shell_words;

pub use diagnostic::{Diagnostic, Severity};
pub use load::{
    fingerprint, load_dir, load_paths, workflow_id_for, Catalog, FileReport, FileStatus,
    Fingerprint, InvalidFile, LoadError,
};
