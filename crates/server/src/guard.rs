//! What every request passes before a handler sees it, so no other web page
//! can drive the server through a user's browser:
//!
//! - **Host allow-list** (DNS rebinding): a request must name the server by
//!   an IP address, `localhost`, or a name given with `--allowed-host` or
//!   `--public-url`. A page at `evil.example` whose name was re-pointed to
//!   127.0.0.1 sends `Host: evil.example` and is refused.
//! - **Origin check** on every state-changing request (anything but GET,
//!   HEAD, OPTIONS): a browser's `Origin` must be this server's own (the
//!   `Host` it was reached at, or `--public-url`); without `Origin`, a
//!   `Sec-Fetch-Site` other than `same-origin`/`none` is refused. Tools such
//!   as curl send neither and pass.
//! - **Headers** on every response: a Content-Security-Policy (scripts and
//!   styles from the server only; API answers may load nothing),
//!   `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: no-referrer`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::ApiError;
use crate::AppState;

/// The page's policy. Vega compiles chart expressions with `Function`, so
/// scripts need `'unsafe-eval'`, still only from this server; vega-embed
/// adds `<style>` elements.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Everything else (JSON, event streams, downloads) loads nothing.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// The host part of a `Host` header or an origin's authority, lower-cased,
/// without port or IPv6 brackets.
fn host_name(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    a.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(a.clone(), |(h, _)| h.to_string())
}

/// True when the server answers to `host` (a Host header's value).
pub fn host_allowed(st: &AppState, host: &str) -> bool {
    let name = host_name(host);
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || st.cfg.allowed_hosts.iter().any(|h| host_name(h) == name)
}

/// True when a state-changing request may come from where it says it does.
fn origin_allowed(st: &AppState, headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    match get("origin") {
        Some(origin) => {
            let Some((_, authority)) = origin.split_once("://") else { return false };
            let own = get("host").is_some_and(|h| h.eq_ignore_ascii_case(authority));
            let public =
                st.cfg.public_url.as_deref().is_some_and(|u| u.trim_end_matches('/').eq_ignore_ascii_case(origin));
            own || public
        }
        None => get("sec-fetch-site").is_none_or(|s| s == "same-origin" || s == "none"),
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}

/// The middleware: checks, then the handler, then the headers.
pub async fn guard(State(st): State<Arc<AppState>>, req: Request<Body>, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let mut resp = if !host_allowed(&st, &host) {
        refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer to that host name; start it with --allowed-host NAME (or --public-url) to allow it",
        )
    } else if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && !origin_allowed(&st, req.headers())
    {
        refuse(StatusCode::FORBIDDEN, "cross-site request refused: only Quarry's own page may change things here")
    } else {
        next.run(req).await
    };
    let page = resp.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"text/html"))
        && resp.headers().get(header::CONTENT_DISPOSITION).is_none();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if page { PAGE_CSP } else { API_CSP }));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn host_names() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("Quarry.Example.org"), "quarry.example.org");
        assert_eq!(host_name("localhost:80"), "localhost");
    }
}
