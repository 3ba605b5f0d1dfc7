//! # quarry-sql: the SQL kernel as its callers see it
//!
//! Owns the caller's side of SQL: [`SqlWorkers`], the pool of sandboxed
//! `quarry worker sql` processes behind `quarry_types::SqlKernel`; the
//! [`protocol`] those workers speak; and [`filter_literals`], what the
//! analyst reads from a query's text. The engine itself (DataFusion, the
//! guard, the session) is `quarry-engine`, which runs inside the worker:
//! the analyst and the server depend on this crate and never link
//! DataFusion (`quarry-tidy` checks it).

pub mod filters;
pub mod params;
pub mod protocol;
pub mod workers;

pub use filters::{filter_literals, one_expression};
pub use workers::SqlWorkers;
