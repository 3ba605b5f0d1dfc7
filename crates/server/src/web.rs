//! The page and its assets, embedded in the binary: Quarry's own HTML, CSS
//! and JavaScript from `web/src`, and Vega, Vega-Lite and vega-embed from
//! npm (`web/node_modules`, pinned by `web/package-lock.json`). Also the
//! file formats of the export buttons.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use quarry_agent::Table;
use serde_json::Value;

use crate::AppState;

const INDEX: &str = include_str!("../../../web/src/index.html");
const APP_JS: &str = include_str!("../../../web/src/app.js");
const APP_CSS: &str = include_str!("../../../web/src/app.css");
const VEGA: &str = include_str!("../../../web/node_modules/vega/build/vega.min.js");
const VEGA_LITE: &str = include_str!("../../../web/node_modules/vega-lite/build/vega-lite.min.js");
const VEGA_EMBED: &str = include_str!("../../../web/node_modules/vega-embed/build/vega-embed.min.js");

fn asset(body: &'static str, ctype: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "no-cache")], body)
}

pub fn routes() -> Router<Arc<AppState>> {
    const JS: &str = "text/javascript; charset=utf-8";
    Router::new()
        .route("/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/app.js", get(|| async { asset(APP_JS, JS) }))
        .route("/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
        .route("/vendor/vega.js", get(|| async { asset(VEGA, JS) }))
        .route("/vendor/vega-lite.js", get(|| async { asset(VEGA_LITE, JS) }))
        .route("/vendor/vega-embed.js", get(|| async { asset(VEGA_EMBED, JS) }))
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table as CSV (RFC 4180 quoting, UTF-8).
pub fn csv_bytes(t: &Table) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(t.columns.iter().map(|c| c.name.as_str()));
    for r in &t.rows {
        let _ = w.write_record(r.iter().map(cell));
    }
    w.into_inner().unwrap_or_default()
}

/// The table as an XLSX workbook (numbers stay numbers), with the question,
/// answer and code on a second sheet.
pub fn xlsx_bytes(t: &Table, answer: &Value) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet().set_name("result")?;
    for (c, col) in t.columns.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, &col.name, &bold)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match v {
                Value::Number(n) => {
                    ws.write_number(r, c, n.as_f64().unwrap_or(0.0))?;
                }
                Value::Bool(b) => {
                    ws.write_boolean(r, c, *b)?;
                }
                Value::Null => {}
                other => {
                    ws.write_string(r, c, cell(other))?;
                }
            }
        }
    }
    let about = wb.add_worksheet().set_name("about")?;
    let rows = [
        ("question", answer["question"].as_str().unwrap_or_default().to_string()),
        ("answer", answer["answer"].as_str().unwrap_or_default().to_string()),
        ("language", answer["language"].as_str().unwrap_or_default().to_string()),
        ("code", answer["code"].as_str().unwrap_or_default().to_string()),
        ("model", answer["provenance"]["model"].as_str().unwrap_or_default().to_string()),
        ("data versions", answer["provenance"]["data_versions"].to_string()),
    ];
    for (i, (k, v)) in rows.iter().enumerate() {
        about.write_string_with_format(i as u32, 0, *k, &bold)?;
        about.write_string(i as u32, 1, v)?;
    }
    wb.save_to_buffer()
}
