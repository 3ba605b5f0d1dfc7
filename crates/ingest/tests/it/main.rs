//! The ingest integration tests, in one test binary.

mod common;

mod fixtures;
mod fuzz;
mod generated;
