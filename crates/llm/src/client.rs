//! The HTTP client: one request, retried with backoff, streamed or not,
//! bounded by a timeout and cancellable at any point.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::{LlmConfig, Provider};
use crate::error::{LlmError, LlmErrorKind};
use crate::types::{ChatRequest, ChatResponse, Delta};
use crate::{anthropic, openai};

/// What the agent depends on: one chat call, streamed deltas to `on_delta`,
/// cancellable through `cancel`.
pub trait ChatModel: Send + Sync {
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        on_delta: &'a mut (dyn FnMut(Delta) + Send),
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>>;

    /// Which model this is, for people and for provenance (never the key).
    fn describe(&self) -> String;

    /// The model's name as configured, for the answer's provenance.
    fn model(&self) -> String;
}

/// A client for one configured model.
#[derive(Clone)]
pub struct Client {
    cfg: LlmConfig,
    http: reqwest::Client,
}

/// Install rustls's `ring` provider for this process (no C toolchain needed);
/// installing twice is harmless. Any reqwest client in the process needs it.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    pub fn new(cfg: LlmConfig) -> Result<Client, LlmError> {
        install_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::new(LlmErrorKind::Connect, format!("the HTTP client could not start: {e}")))?;
        Ok(Client { cfg, http })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.cfg
    }

    fn key(&self) -> Option<&str> {
        self.cfg.api_key.as_ref().map(|k| k.expose())
    }

    /// One chat call with retries on 429, 5xx and dropped connections.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Delta) + Send),
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, LlmError> {
        let mut attempt = 0;
        loop {
            let mut sent_any = false;
            let mut forward = |d| {
                sent_any = true;
                on_delta(d)
            };
            let result = tokio::select! {
                _ = cancel.cancelled() => Err((LlmError::new(LlmErrorKind::Cancelled, "cancelled"), None)),
                r = self.once(req, &mut forward) => r,
            };
            let (err, retry_after) = match result {
                Ok(r) => return Ok(r),
                Err((e, retry_after)) => (e.scrub(self.key()), retry_after),
            };
            // Never retry once part of a reply reached the caller.
            if !err.retryable() || sent_any || attempt >= self.cfg.max_retries {
                return Err(err);
            }
            let backoff = self.cfg.retry_base.saturating_mul(1 << attempt.min(6)).min(Duration::from_secs(20));
            let wait = retry_after.map(|s| s.min(Duration::from_secs(30))).unwrap_or(backoff);
            tracing::warn!(attempt, ?wait, error = %err, "retrying the model request");
            attempt += 1;
            tokio::select! {
                _ = cancel.cancelled() => return Err(LlmError::new(LlmErrorKind::Cancelled, "cancelled")),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn once(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Delta) + Send),
    ) -> Result<ChatResponse, (LlmError, Option<Duration>)> {
        let (url, body) = match self.cfg.provider {
            Provider::OpenAi => (openai::url(&self.cfg), openai::body(&self.cfg, req)),
            Provider::Anthropic => (anthropic::url(&self.cfg), anthropic::body(&self.cfg, req)),
        };
        let mut rb = self.http.post(&url).json(&body);
        match self.cfg.provider {
            Provider::OpenAi => {
                if let Some(k) = self.key() {
                    rb = rb.bearer_auth(k);
                }
            }
            Provider::Anthropic => {
                rb = rb.header("anthropic-version", anthropic::VERSION);
                if let Some(k) = self.key() {
                    rb = rb.header("x-api-key", k);
                }
            }
        }
        let timeout = self.cfg.timeout;
        let resp = match tokio::time::timeout(timeout, rb.send()).await {
            Err(_) => return Err((self.timed_out(), None)),
            Ok(Err(e)) => return Err((connect_error(&e, &url), None)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 60.0)));
            let text = tokio::time::timeout(timeout, resp.text()).await.ok().and_then(|r| r.ok()).unwrap_or_default();
            return Err((status_error(status, &text, &self.cfg.model), retry_after));
        }
        if !req.stream {
            let text = match tokio::time::timeout(timeout, resp.text()).await {
                Err(_) => return Err((self.timed_out(), None)),
                Ok(Err(e)) => return Err((connect_error(&e, &url), None)),
                Ok(Ok(t)) => t,
            };
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
                let shown: String = text.chars().take(200).collect();
                (
                    LlmError::new(
                        LlmErrorKind::BadResponse,
                        format!("the model server sent a reply that is not JSON: {shown}"),
                    ),
                    None,
                )
            })?;
            let parsed = match self.cfg.provider {
                Provider::OpenAi => openai::parse(&v),
                Provider::Anthropic => anthropic::parse(&v),
            };
            let r = parsed.map_err(|e| (e, None))?;
            if !r.text.is_empty() {
                on_delta(Delta::Text { text: r.text.clone() });
            }
            return Ok(r);
        }
        let mut events = resp.bytes_stream().eventsource();
        let mut oa = openai::Stream::default();
        let mut an = anthropic::Stream::default();
        loop {
            let next = match tokio::time::timeout(timeout, events.next()).await {
                Err(_) => return Err((self.timed_out(), None)),
                Ok(n) => n,
            };
            let Some(ev) = next else { break };
            let ev = ev.map_err(|e| {
                (
                    LlmError::new(
                        LlmErrorKind::BadResponse,
                        format!("the model server's stream could not be read: {e}"),
                    ),
                    None,
                )
            })?;
            let done = match self.cfg.provider {
                Provider::OpenAi => oa.feed(&ev.data, on_delta),
                Provider::Anthropic => an.feed(&ev.data, on_delta),
            }
            .map_err(|e| (e, None))?;
            if done {
                break;
            }
        }
        match self.cfg.provider {
            Provider::OpenAi => oa.finish(),
            Provider::Anthropic => an.finish(),
        }
        .map_err(|e| (e, None))
    }

    fn timed_out(&self) -> LlmError {
        LlmError::new(
            LlmErrorKind::Timeout,
            format!(
                "the model at {} did not answer within {} s; a local model may need a longer timeout (timeout_secs in quarry.toml)",
                self.cfg.base_url,
                self.cfg.timeout.as_secs_f64()
            ),
        )
    }
}

fn connect_error(e: &reqwest::Error, url: &str) -> LlmError {
    // reqwest's messages carry the URL, never headers.
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    LlmError::new(
        LlmErrorKind::Connect,
        format!("the model server at {url} could not be reached ({detail}); check QUARRY_LLM_BASE_URL and that the server is running"),
    )
}

fn status_error(status: u16, body: &str, model: &str) -> LlmError {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"].as_str().or(v["error"].as_str()).or(v["message"].as_str()).map(String::from)
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    let what = match status {
        401 | 403 => "the API key was refused".to_string(),
        404 => format!("the server does not know model '{model}' or this endpoint"),
        429 => "rate-limited by the model server".to_string(),
        s if s >= 500 => "the model server failed".to_string(),
        _ => "the model server refused the request".to_string(),
    };
    LlmError::http(status, format!("{what} (HTTP {status}): {}", detail.trim()))
}

impl ChatModel for Client {
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
        on_delta: &'a mut (dyn FnMut(Delta) + Send),
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ChatResponse, LlmError>> {
        Box::pin(Client::chat(self, req, on_delta, cancel))
    }

    fn describe(&self) -> String {
        self.cfg.describe()
    }

    fn model(&self) -> String {
        self.cfg.model.clone()
    }
}
