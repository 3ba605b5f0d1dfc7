//! Each crate's errors as HTTP: a status and a stable `code` the API
//! returns beside the message (`{"error": "…", "code": "file_corrupt"}`), so
//! a client can tell a damaged file from a server fault without reading
//! prose. One table per error type, here and nowhere else.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use quarry_ingest::{ErrorKind as IngestKind, IngestError};
use quarry_types::{EngineError, ErrorKind as SqlKind};
use serde_json::json;

/// An error as the API returns it: `{"error": "…", "code": "…"}` with a
/// status. Errors of the other crates convert with their own status and
/// code ([`ApiCode`]).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// A stable name for the kind of error (`file_corrupt`, `sql_refused`, …).
    pub code: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "login_required",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::MISDIRECTED_REQUEST => "unknown_host",
            StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        };
        ApiError { status, message: message.into(), code }
    }
    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }
    pub fn not_found(m: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn bad(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message, "code": self.code}))).into_response()
    }
}

/// An error that knows its HTTP status and stable code.
pub trait ApiCode {
    fn status(&self) -> StatusCode;
    fn code(&self) -> &'static str;
}

impl ApiCode for IngestError {
    fn status(&self) -> StatusCode {
        match self.kind {
            IngestKind::Empty | IngestKind::NotTabular | IngestKind::Corrupt | IngestKind::Layout => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
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
            IngestKind::Layout => "layout_does_not_fit",
            IngestKind::Internal => "internal",
        }
    }
}

impl ApiCode for EngineError {
    fn status(&self) -> StatusCode {
        match self.kind {
            SqlKind::Refused | SqlKind::UnknownName | SqlKind::Invalid => StatusCode::BAD_REQUEST,
            SqlKind::MemoryLimit | SqlKind::Timeout | SqlKind::ResultTooLarge | SqlKind::LiveRowCap => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
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
            SqlKind::LiveRowCap => "sql_live_row_cap",
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
