//! Answers as files: one question's or a whole conversation's, rendered by
//! `quarry-report` (CSV, XLSX, JSON, HTML report, notebook) or printed to
//! PDF by headless Chromium behind its own walls; each export is on the
//! workspace's audit trail. Share links export through the same functions.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use quarry_agent::{Answer, Event};
use quarry_report::{Format, Report, ReportError, Source};
use quarry_store::AuditAction;

use super::{audit, catalog, ApiError, ErrorBody};
use crate::auth::{Read, Ws};
use crate::AppState;

#[utoipa::path(get, path = "/api/conversations/{id}/questions/{q}/export/{format}",
    params(("id" = String, Path), ("q" = i64, Path),
        ("format" = String, Path, description = "csv, xlsx, json, html (a self-contained report) or ipynb (a Jupyter notebook)")),
    responses((status = 200, description = "the answer as a file"), (status = 404, body = ErrorBody)))]
pub(super) async fn export(
    State(st): State<Arc<AppState>>,
    Ws(mut a, _): Ws<Read>,
    Path((_, q, format)): Path<(String, i64, String)>,
) -> Result<Response, ApiError> {
    let c = a.conversation()?;
    tokio::task::spawn_blocking(move || {
        let answers = answers_of(&st, &c.id, Some(q))?;
        let file = format!("quarry-{}-q{q}", c.id);
        let r = export_answers(&st, &c.workspace, &c.title, &answers, &format, &file)?;
        audit::record(&st, &c.workspace, &a.user, AuditAction::Export, &r.0)?;
        Ok(r.1)
    })
    .await
    .map_err(ApiError::internal)?
}

#[utoipa::path(get, path = "/api/conversations/{id}/export/{format}",
    params(("id" = String, Path),
        ("format" = String, Path, description = "html (a self-contained report), ipynb (a Jupyter notebook), json; csv and xlsx take the last answer's table")),
    responses((status = 200, description = "every answer of the conversation as one file"), (status = 404, body = ErrorBody)))]
pub(super) async fn export_conversation(
    State(st): State<Arc<AppState>>,
    Ws(mut a, _): Ws<Read>,
    Path((_, format)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let c = a.conversation()?;
    tokio::task::spawn_blocking(move || {
        let answers = answers_of(&st, &c.id, None)?;
        let r = export_answers(&st, &c.workspace, &c.title, &answers, &format, &format!("quarry-{}", c.id))?;
        audit::record(&st, &c.workspace, &a.user, AuditAction::Export, &r.0)?;
        Ok(r.1)
    })
    .await
    .map_err(ApiError::internal)?
}

/// The answers of one question (`q`) or of the whole conversation, in
/// order; a question answered twice (a retry after a restart) keeps its last.
pub(crate) fn answers_of(st: &AppState, conversation: &str, q: Option<i64>) -> Result<Vec<Answer>, ApiError> {
    let mut answers: Vec<(i64, Answer)> = Vec::new();
    for e in st.store.events(conversation, 0).map_err(ApiError::internal)? {
        let Event::Answer { answer } = e.event else { continue };
        if q.is_some_and(|q| q != e.question) {
            continue;
        }
        match answers.last_mut() {
            Some((n, last)) if *n == e.question => *last = *answer,
            _ => answers.push((e.question, *answer)),
        }
    }
    if answers.is_empty() {
        return Err(ApiError::not_found(if q.is_some() { "no answer for that question" } else { "no answers yet" }));
    }
    Ok(answers.into_iter().map(|(_, a)| a).collect())
}

/// `answers` of workspace `ws` rendered by `quarry-report` as `format`,
/// with the Parquet files of the data versions they read, as a download
/// named `stem.ext`; returns the file's name too. Blocking (SQLite reads,
/// XLSX building, printing): handlers run it in `spawn_blocking`.
pub(crate) fn export_answers(
    st: &AppState,
    ws: &str,
    title: &str,
    answers: &[Answer],
    format: &str,
    stem: &str,
) -> Result<(String, Response), ApiError> {
    let format = Format::parse(format).map_err(|e| ApiError::bad(e.to_string()))?;
    // Notebooks name the data relative to the workspace (`data/tables/…`),
    // not the server's own directories.
    let ws_dir = st.ws_dir(ws);
    let sources = match catalog(st, ws)? {
        Some(cat) => Source::for_answers(answers, |t, v| cat.entry(t, Some(v)).ok().map(|e| e.parquet))
            .into_iter()
            .map(|mut s| {
                let abs = std::path::absolute(&ws_dir).unwrap_or_else(|_| ws_dir.clone());
                if let Ok(rel) = s.parquet.strip_prefix(&abs) {
                    s.parquet = rel.to_path_buf();
                }
                s
            })
            .collect(),
        None => Vec::new(),
    };
    let title = if title.is_empty() { "Quarry conversation" } else { title };
    let report = Report { title, answers, sources: &sources };
    let rendered = |f: Format| {
        quarry_report::render(f, &report).map_err(|e| match e {
            ReportError::Xlsx(_) | ReportError::NeedsPrinting => ApiError::internal(e),
            _ => ApiError::not_found(&e.to_string()),
        })
    };
    let bytes = match format {
        // Printed by headless Chromium behind its own walls; without it, the reason and what to do.
        Format::Pdf => quarry_sandbox::pdf::print(&rendered(Format::Html)?)
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?,
        f => rendered(f)?,
    };
    let file = format!("{stem}.{}", format.extension());
    let resp = (
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
        ],
        bytes,
    )
        .into_response();
    Ok((file, resp))
}
