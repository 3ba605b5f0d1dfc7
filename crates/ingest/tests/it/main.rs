//! The ingest integration tests, in one test binary.

mod common;

mod accounting;
mod fixtures;
mod fuzz;
mod generated;
mod layouts;
mod parallel;
