//! # quarry-sandbox: the walls around generated Python
//!
//! Owns what stands between generated code and the machine, beyond the
//! worker process itself (which `quarry-worker` spawns, limits and talks
//! to): [`jail`] raises namespaces, Landlock and seccomp in
//! `quarry worker jail` before it executes the interpreter, and [`python`]
//! is the Python kernel — its AST check first, then the jailed interpreter;
//! [`pdf`] prints a report with headless Chromium behind walls of its own.
//! With `quarry-worker`, the only crates that spawn processes.
//!
//! The worker crate's items are re-exported, so a caller that runs Python
//! needs one dependency for both.

pub mod jail;
pub mod pdf;
pub mod python;

pub use quarry_worker::*;
