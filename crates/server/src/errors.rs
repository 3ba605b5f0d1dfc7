//! Each crate's errors as HTTP: a status and a stable `code` the API
//! returns beside the message (`{"error": "…", "code": "file_corrupt"}`), so
//! a client can tell a damaged file from a server fault without reading
//! prose. One table per error type, here and nowhere else.

use axum::http::StatusCode;
use quarry_engine::{EngineError, ErrorKind as SqlKind};
use quarry_ingest::{ErrorKind as IngestKind, IngestError};

use crate::api::ApiError;

/// An error that knows its HTTP status and stable code.
pub trait ApiCode {
    fn status(&self) -> StatusCode;
    fn code(&self) -> &'static str;
}

impl ApiCode for IngestError {
    fn status(&self) -> StatusCode {
        match self.kind {
            IngestKind::Empty | IngestKind::NotTabular | IngestKind::Corrupt => StatusCode::UNPROCESSABLE_ENTITY,
            IngestKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            IngestKind::Io | IngestKind::Catalog | IngestKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn code(&self) -> &'static str {
        match self.kind {
            IngestKind::Empty => "file_empty",
            IngestKind::NotTabular => "file_not_tabular",
            IngestKind::Corrupt => "file_corrupt",
            IngestKind::TooLarge => "file_too_large",
            IngestKind::Io => "io",
            IngestKind::Catalog => "catalog",
            IngestKind::Internal => "internal",
        }
    }
}

impl ApiCode for EngineError {
    fn status(&self) -> StatusCode {
        match self.kind {
            SqlKind::Refused | SqlKind::UnknownName | SqlKind::Invalid => StatusCode::BAD_REQUEST,
            SqlKind::MemoryLimit | SqlKind::Timeout | SqlKind::ResultTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            SqlKind::Catalog | SqlKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn code(&self) -> &'static str {
        match self.kind {
            SqlKind::Refused => "sql_refused",
            SqlKind::UnknownName => "sql_unknown_name",
            SqlKind::Invalid => "sql_invalid",
            SqlKind::MemoryLimit => "sql_memory_limit",
            SqlKind::Timeout => "sql_timeout",
            SqlKind::ResultTooLarge => "sql_result_too_large",
            SqlKind::Catalog => "catalog",
            SqlKind::Internal => "internal",
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        ApiError::new(e.status(), e.to_string()).with_code(e.code())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        ApiError::new(e.status(), e.to_string()).with_code(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_problems_are_the_users_and_faults_are_the_servers() {
        let e = IngestError::new(IngestKind::Corrupt, "truncated", "save it again").in_file("a.xlsx");
        let api = ApiError::from(e);
        assert_eq!((api.status, api.code), (StatusCode::UNPROCESSABLE_ENTITY, "file_corrupt"));
        let big = ApiError::from(IngestError::new(IngestKind::TooLarge, "bomb", ""));
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(ApiError::from(IngestError::internal("x")).status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
