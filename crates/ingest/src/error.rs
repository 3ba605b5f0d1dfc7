//! One error type for every way a file can fail to load. Each names the file,
//! says what is wrong, and says what to do about it.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file has no bytes, or no rows at all.
    Empty,
    /// The bytes are not a table Quarry can read (binary, PDF, image…).
    NotTabular,
    /// The file is a known format but damaged (truncated workbook, unclosed quote).
    Corrupt,
    /// The file would exceed a resource limit (zip bomb, too many cells).
    TooLarge,
    /// Reading or writing failed at the OS level.
    Io,
    /// The catalog could not be read or written.
    Catalog,
    /// The layout a person chose does not fit the file (a sheet it lacks).
    Layout,
    /// A bug in Quarry: the message says so.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestError {
    pub kind: ErrorKind,
    /// The file (and sheet) the error is about; empty until attached.
    pub file: String,
    /// What is wrong, in one sentence.
    pub problem: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "{}", self.problem)?;
        if !self.hint.is_empty() {
            write!(f, " — {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for IngestError {}

impl IngestError {
    pub fn new(kind: ErrorKind, problem: impl Into<String>, hint: impl Into<String>) -> Self {
        IngestError { kind, file: String::new(), problem: problem.into(), hint: hint.into() }
    }

    pub fn internal(problem: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, problem, "this is a bug in Quarry; please report it with the file if you can")
    }

    pub fn io(e: std::io::Error) -> Self {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path",
            std::io::ErrorKind::PermissionDenied => "check the file's permissions",
            _ => "check the disk and the path",
        };
        Self::new(ErrorKind::Io, e.to_string(), hint)
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        if self.file.is_empty() {
            self.file = file.into();
        }
        self
    }
}

impl From<std::io::Error> for IngestError {
    fn from(e: std::io::Error) -> Self {
        Self::io(e)
    }
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
