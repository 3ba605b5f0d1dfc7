//! Anthropic Messages on the wire.

use serde_json::{json, Value};

use crate::error::{LlmError, LlmErrorKind};
use crate::types::{ChatRequest, ChatResponse, Delta, Finish, Role, ToolCall, Usage};
use crate::LlmConfig;

pub const VERSION: &str = "2023-06-01";

pub fn url(cfg: &LlmConfig) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

pub fn body(cfg: &LlmConfig, req: &ChatRequest) -> Value {
    let system: Vec<&str> =
        req.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    // Anthropic wants user and assistant turns alternating: merge neighbours.
    let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
    for m in req.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = match m.role {
            Role::User => ("user", vec![json!({"type": "text", "text": m.content})]),
            Role::Tool => {
                ("user", vec![json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content})])
            }
            _ => {
                let mut b = Vec::new();
                if !m.content.is_empty() {
                    b.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    let input = c.parsed().unwrap_or_else(|_| json!({}));
                    b.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ("assistant", b)
            }
        };
        match messages.last_mut() {
            Some((r, bs)) if r == role => bs.extend(blocks),
            _ => messages.push((role.to_string(), blocks)),
        }
    }
    let mut b = json!({
        "model": cfg.model,
        "max_tokens": req.max_tokens.unwrap_or(cfg.max_tokens),
        "messages": messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>(),
        "stream": req.stream,
    });
    if !system.is_empty() {
        b["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if !req.tools.is_empty() {
        b["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    b
}

fn finish(s: Option<&str>) -> Option<Finish> {
    Some(match s? {
        "end_turn" | "stop_sequence" => Finish::Stop,
        "max_tokens" => Finish::Length,
        "tool_use" => Finish::ToolCalls,
        _ => Finish::Other,
    })
}

pub fn parse(v: &Value) -> Result<ChatResponse, LlmError> {
    let blocks =
        v["content"].as_array().ok_or_else(|| LlmError::bad_response("a reply without content", &v.to_string()))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                arguments: b["input"].to_string(),
            }),
            _ => {}
        }
    }
    Ok(ChatResponse {
        text,
        tool_calls,
        finish: finish(v["stop_reason"].as_str()).unwrap_or(Finish::Stop),
        usage: Usage {
            input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
        model: v["model"].as_str().unwrap_or_default().to_string(),
    })
}

enum Block {
    Text,
    Tool(usize),
}

/// Reassembles a streamed reply from Anthropic's typed events.
#[derive(Default)]
pub struct Stream {
    text: String,
    calls: Vec<ToolCall>,
    blocks: Vec<Option<Block>>,
    finish: Option<Finish>,
    usage: Usage,
    model: String,
    stopped: bool,
}

impl Stream {
    /// Feed one SSE event's data. Returns true at `message_stop`.
    pub fn feed(&mut self, data: &str, on_delta: &mut (dyn FnMut(Delta) + Send)) -> Result<bool, LlmError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value =
            serde_json::from_str(data).map_err(|_| LlmError::bad_response("a malformed stream event", data))?;
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                self.model = v["message"]["model"].as_str().unwrap_or_default().to_string();
                self.usage.input_tokens = v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let i = v["index"].as_u64().unwrap_or(0) as usize;
                if i > 256 {
                    return Err(LlmError::bad_response("a content block index out of range", data));
                }
                let cb = &v["content_block"];
                let block = match cb["type"].as_str() {
                    Some("tool_use") => {
                        let name = cb["name"].as_str().unwrap_or_default().to_string();
                        self.calls.push(ToolCall {
                            id: cb["id"].as_str().unwrap_or_default().to_string(),
                            name: name.clone(),
                            arguments: String::new(),
                        });
                        on_delta(Delta::ToolCall {
                            index: self.calls.len() - 1,
                            name: Some(name),
                            arguments: String::new(),
                        });
                        Some(Block::Tool(self.calls.len() - 1))
                    }
                    Some("text") => Some(Block::Text),
                    _ => None,
                };
                if self.blocks.len() <= i {
                    self.blocks.resize_with(i + 1, || None);
                }
                self.blocks[i] = block;
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap_or(0) as usize;
                let d = &v["delta"];
                match (self.blocks.get(i).and_then(|b| b.as_ref()), d["type"].as_str()) {
                    (Some(Block::Text), Some("text_delta")) => {
                        let t = d["text"].as_str().unwrap_or_default();
                        self.text.push_str(t);
                        on_delta(Delta::Text { text: t.to_string() });
                    }
                    (Some(Block::Tool(c)), Some("input_json_delta")) => {
                        let p = d["partial_json"].as_str().unwrap_or_default();
                        self.calls[*c].arguments.push_str(p);
                        on_delta(Delta::ToolCall { index: *c, name: None, arguments: p.to_string() });
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(f) = finish(v["delta"]["stop_reason"].as_str()) {
                    self.finish = Some(f);
                }
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = n;
                }
            }
            "message_stop" => {
                self.stopped = true;
                return Ok(true);
            }
            "error" => {
                let msg = v["error"]["message"].as_str().unwrap_or("unknown error");
                let kind = v["error"]["type"].as_str().unwrap_or("error");
                let status = if kind == "overloaded_error" { 529 } else { 500 };
                return Err(LlmError::http(status, format!("the model server reported {kind}: {msg}")));
            }
            _ => {}
        }
        Ok(false)
    }

    pub fn finish(self) -> Result<ChatResponse, LlmError> {
        if !self.stopped && self.finish.is_none() {
            return Err(LlmError::new(
                LlmErrorKind::BadResponse,
                "the model server's stream ended early (connection closed mid-reply)",
            ));
        }
        // A tool call without input deltas has empty input.
        let calls = self
            .calls
            .into_iter()
            .map(|mut c| {
                if c.arguments.is_empty() {
                    c.arguments = "{}".into();
                }
                c
            })
            .collect();
        Ok(ChatResponse {
            text: self.text,
            tool_calls: calls,
            finish: self.finish.unwrap_or(Finish::Stop),
            usage: self.usage,
            model: self.model,
        })
    }
}
