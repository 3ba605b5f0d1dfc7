//! The end-to-end suite: the real `quarry` binary, real sandboxed workers,
//! real files and the fake LLM over HTTP. One test binary (not one per file)
//! so the workspace links DataFusion once for these tests, not seven times.

mod common;

mod analyses;
mod analyst;
mod analyst_python;
mod attacks;
mod cli;
#[cfg(feature = "ballista")]
mod cluster;
mod demo;
mod hostile;
mod insights;
mod mariadb;
mod packs;
mod pdf;
mod python;
mod server;
mod sources;
mod teams;
mod trust;
mod workers;
