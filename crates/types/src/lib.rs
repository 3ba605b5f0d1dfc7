//! # quarry-types: the words every crate shares
//!
//! Owns the vocabulary that crosses crate lines, and nothing that computes
//! with it: an answer and its provenance ([`answer`]), the one event stream
//! ([`event`]), a workspace's [`definitions`] and live [`sources`], the privacy modes ([`privacy`]), the [`Limits`] every kernel
//! runs under, and the seam SQL runs behind ([`sql::SqlKernel`], its
//! [`sql::QueryResult`] and [`sql::EngineError`]).
//!
//! It depends on arrow and serde only, so a renderer (`quarry-report`), the
//! store and the server's types link neither DataFusion nor the sandbox:
//! `quarry-tidy` checks that this crate depends on no other Quarry crate.

pub mod answer;
pub mod column;
pub mod definitions;
pub mod engine_target;
pub mod event;
pub mod limits;
pub mod privacy;
pub mod sources;
pub mod sql;

pub use answer::{plain, Answer, Clarification, Column, DataVersion, Provenance, Step, Table};
pub use column::ColumnType;
pub use definitions::{Definition, DefinitionKind, Definitions};
pub use engine_target::{ClusterStore, EngineTarget};
pub use event::Event;
pub use limits::Limits;
pub use privacy::Privacy;
pub use sources::{LiveTable, Source, SourceKind};
pub use sql::{EngineError, ErrorKind, QueryResult, Refusal, Rule, SqlKernel, TableInfo};
