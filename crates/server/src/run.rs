//! Questions in flight: each runs the analyst in a task; every event is
//! appended to the store first and then broadcast to the page's streams.
//! (`llm_delta` pieces are only broadcast: the reply they make up is stored
//! in the events that follow.)

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use quarry_agent::{Analyst, AskOptions, Conversation, Event, Privacy};
use quarry_llm::{CancellationToken, ChatModel};
use quarry_store::{ConversationRow, StoredEvent, User, Workspace};
use quarry_types::SqlKernel;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use utoipa::ToSchema;

use crate::errors::ApiError;
use crate::{AppState, Running};

/// A question asked over the API.
#[derive(Deserialize, ToSchema)]
pub struct Question {
    pub question: String,
    /// strict (default), sample or full.
    pub privacy: Option<String>,
    /// Another model at the same provider.
    pub model: Option<String>,
    /// Only these tables are described to the model (all when empty or absent).
    #[serde(default)]
    pub tables: Vec<String>,
}

/// Start a question; its number in the conversation.
pub fn start(st: &Arc<AppState>, u: &User, c: ConversationRow, ws: Workspace, q: Question) -> Result<i64, ApiError> {
    let llm = st.model().map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let privacy: Privacy = q.privacy.as_deref().unwrap_or("strict").parse().map_err(ApiError::bad)?;
    let question = q.question.trim().to_string();
    let tables = q.tables;
    if question.is_empty() || question.len() > 4000 {
        return Err(ApiError::bad("a question needs 1 to 4000 characters"));
    }
    let data = st.ws_data(&ws.id);
    if !data.join("catalog.sqlite").exists() {
        return Err(ApiError::bad("there are no tables in this workspace yet: upload a file first"));
    }
    let llm: Arc<dyn ChatModel> = match (q.model.as_deref().map(str::trim), &st.cfg.llm) {
        (Some(m), Ok(cfg)) if !m.is_empty() && m != cfg.model => {
            let cfg = quarry_llm::LlmConfig { model: m.to_string(), ..cfg.clone() };
            Arc::new(quarry_llm::Client::new(cfg).map_err(|e| ApiError::bad(e.to_string()))?)
        }
        _ => llm,
    };
    if !st.allow(u.id, "question", st.cfg.questions_per_minute) {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many questions this minute: wait a little"));
    }
    let cancel = CancellationToken::new();
    let number = {
        let mut running = st.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&c.id) {
            return Err(ApiError::new(StatusCode::CONFLICT, "this conversation is still answering: stop it or wait"));
        }
        let number = st.store.next_question(&c.id).map_err(ApiError::internal)?;
        running.insert(c.id.clone(), Running { cancel: cancel.clone(), question: number });
        number
    };
    if c.title.is_empty() {
        let title: String = question.chars().take(80).collect();
        let _ = st.store.set_title(&c.id, &title);
    }
    let st = st.clone();
    tokio::spawn(async move {
        let k = st.kernels(&ws.id);
        let sql: Arc<dyn SqlKernel> = k.sql.clone();
        let analyst = Analyst::assemble(llm, sql, &k.dir.join("data"), &k.dir.join("answers"), st.python.clone());
        let mut conv: Conversation = serde_json::from_value(c.state.clone()).unwrap_or_default();
        conv.id = c.id.clone();
        let tx = st.live(&c.id);
        let store = st.store.clone();
        let cid = c.id.clone();
        let mut sink = |e: Event| {
            let seq = if matches!(e, Event::LlmDelta { .. }) {
                0
            } else {
                match store.append_event(&cid, number, &e) {
                    Ok(s) => s,
                    Err(err) => {
                        tracing::error!("storing an event failed: {err}");
                        0
                    }
                }
            };
            let _ = tx.send(StoredEvent { seq, question: number, event: e });
        };
        let opts = AskOptions { privacy, limits: st.cfg.limits.clone(), tables, ..AskOptions::default() };
        let _ = analyst.ask(&mut conv, &question, &opts, &mut sink, &cancel).await;
        let _ = store.save_state(&cid, &serde_json::to_value(&conv).unwrap_or_default());
        st.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&cid);
        st.prune_live();
    });
    Ok(number)
}

/// Stop the question in flight; false when none was running.
pub fn cancel(st: &AppState, conversation: &str) -> bool {
    match st.running.lock().unwrap_or_else(|p| p.into_inner()).get(conversation) {
        Some(r) => {
            tracing::info!("cancelling question {} of {conversation}", r.question);
            r.cancel.cancel();
            true
        }
        None => false,
    }
}

fn to_sse(e: &StoredEvent) -> SseEvent {
    let data = json!({"seq": e.seq, "question": e.question, "event": e.event}).to_string();
    let ev = SseEvent::default().data(data);
    if e.seq > 0 {
        ev.id(e.seq.to_string())
    } else {
        ev
    }
}

/// The stored events after `after`, then live ones, until the client leaves
/// or the server shuts down.
pub fn sse(
    st: &Arc<AppState>,
    conversation: &str,
    after: i64,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before reading the store, so nothing falls between the two.
    let rx = st.subscribe(conversation);
    let stored = st.store.events(conversation, after).map_err(ApiError::internal)?;
    let last = stored.last().map_or(after, |e| e.seq);
    let first = futures_util::stream::iter(stored.iter().map(to_sse).map(Ok).collect::<Vec<_>>());
    let stop = st.shutdown.clone();
    let live = futures_util::stream::unfold((rx, last, stop), |(mut rx, last, stop)| async move {
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => return None,
                r = rx.recv() => r,
            };
            match got {
                Ok(e) if e.seq == 0 || e.seq > last => {
                    let last = last.max(e.seq);
                    return Some((Ok(to_sse(&e)), (rx, last, stop)));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt;
    Ok(Sse::new(first.chain(live)).keep_alive(KeepAlive::default()))
}
