//! The frames between the caller and `quarry worker sql`: a [`Request`]
//! (the query and its limits, or a live source to test) and a [`Header`]
//! answering it, with the result as the frame's Arrow IPC payload. `quarry_engine::worker::serve`
//! is the other end.

use quarry_types::sources::Passwords;
use quarry_types::sql::Param;
use quarry_types::{EngineError, Limits, LiveTable, Source};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub sql: String,
    pub limits: Limits,
    /// Values for the query's named placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// Passwords of live sources that keep theirs in the caller's environment.
    #[serde(default, skip_serializing_if = "Passwords::is_empty")]
    pub passwords: Passwords,
    /// Instead of a query: connect to this source and describe its tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_source: Option<Source>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Header {
    pub ok: bool,
    #[serde(default)]
    pub rows: usize,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub error: Option<EngineError>,
    /// The tables of a tested source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<LiveTable>,
}
