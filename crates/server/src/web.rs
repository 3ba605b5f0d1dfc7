//! The page and its assets, embedded in the binary: Quarry's own HTML, CSS
//! and JavaScript from `web/src`, and Vega, Vega-Lite and vega-embed from
//! npm, which `quarry-report` embeds (its HTML reports inline them too).

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use quarry_report::vendor::{VEGA, VEGA_EMBED, VEGA_LITE};

use crate::AppState;

const INDEX: &str = include_str!("../../../web/src/index.html");
const APP_JS: &str = include_str!("../../../web/src/app.js");
const TEAM_JS: &str = include_str!("../../../web/src/team.js");
const APP_CSS: &str = include_str!("../../../web/src/app.css");

fn asset(body: &'static str, ctype: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "no-cache")], body)
}

pub fn routes() -> Router<Arc<AppState>> {
    const JS: &str = "text/javascript; charset=utf-8";
    Router::new()
        .route("/", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        // A share link's page: the same document, in its read-only mode (the token is in the fragment).
        .route("/shared", get(|| async { asset(INDEX, "text/html; charset=utf-8") }))
        .route("/app.js", get(|| async { asset(APP_JS, JS) }))
        .route("/team.js", get(|| async { asset(TEAM_JS, JS) }))
        .route("/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
        .route("/vendor/vega.js", get(|| async { asset(VEGA, JS) }))
        .route("/vendor/vega-lite.js", get(|| async { asset(VEGA_LITE, JS) }))
        .route("/vendor/vega-embed.js", get(|| async { asset(VEGA_EMBED, JS) }))
}
