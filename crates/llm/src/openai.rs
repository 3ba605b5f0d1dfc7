//! OpenAI Chat Completions on the wire (also Ollama, vLLM, llama.cpp, LM
//! Studio, OpenRouter).

use serde_json::{json, Value};

use crate::error::{LlmError, LlmErrorKind};
use crate::types::{ChatRequest, ChatResponse, Delta, Finish, Role, ToolCall, Usage};
use crate::LlmConfig;

pub fn url(cfg: &LlmConfig) -> String {
    let base = cfg.base_url.trim_end_matches('/');
    // `http://localhost:11434` means the server's OpenAI-compatible root.
    let has_path = base.split("://").nth(1).is_some_and(|rest| rest.contains('/'));
    if has_path {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

pub fn body(cfg: &LlmConfig, req: &ChatRequest) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| match m.role {
            Role::System => json!({"role": "system", "content": m.content}),
            Role::User => json!({"role": "user", "content": m.content}),
            Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
            Role::Assistant if m.tool_calls.is_empty() => json!({"role": "assistant", "content": m.content}),
            Role::Assistant => json!({
                "role": "assistant",
                "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
                "tool_calls": m.tool_calls.iter().map(|c| json!({
                    "id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })).collect::<Vec<_>>(),
            }),
        })
        .collect();
    let mut b = json!({
        "model": cfg.model,
        "messages": messages,
        "stream": req.stream,
        "max_tokens": req.max_tokens.unwrap_or(cfg.max_tokens),
    });
    if req.stream {
        b["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = req.temperature {
        b["temperature"] = json!(t);
    }
    if !req.tools.is_empty() {
        b["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
    }
    if let Some(schema) = &req.json_schema {
        b["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}});
    }
    b
}

fn finish(s: Option<&str>) -> Option<Finish> {
    Some(match s? {
        "stop" | "end_turn" => Finish::Stop,
        "length" | "max_tokens" => Finish::Length,
        "tool_calls" | "function_call" => Finish::ToolCalls,
        _ => Finish::Other,
    })
}

fn usage(v: &Value) -> Usage {
    Usage {
        input_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
    }
}

/// A complete (non-streamed) reply.
pub fn parse(v: &Value) -> Result<ChatResponse, LlmError> {
    let choice =
        v["choices"].get(0).ok_or_else(|| LlmError::bad_response("a reply without choices", &v.to_string()))?;
    let msg = &choice["message"];
    let tool_calls = msg["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .enumerate()
                .map(|(i, c)| ToolCall {
                    id: c["id"].as_str().map(String::from).unwrap_or_else(|| format!("call_{i}")),
                    name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
                    arguments: match &c["function"]["arguments"] {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        text: msg["content"].as_str().unwrap_or_default().to_string(),
        tool_calls,
        finish: finish(choice["finish_reason"].as_str()).unwrap_or(Finish::Stop),
        usage: usage(&v["usage"]),
        model: v["model"].as_str().unwrap_or_default().to_string(),
    })
}

/// Reassembles a streamed reply from `data:` chunks.
#[derive(Default)]
pub struct Stream {
    text: String,
    calls: Vec<ToolCall>,
    finish: Option<Finish>,
    usage: Usage,
    model: String,
    done: bool,
}

impl Stream {
    /// Feed one SSE data field. Returns true at `[DONE]`.
    pub fn feed(&mut self, data: &str, on_delta: &mut (dyn FnMut(Delta) + Send)) -> Result<bool, LlmError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value =
            serde_json::from_str(data).map_err(|_| LlmError::bad_response("a malformed stream chunk", data))?;
        if let Some(err) = v.get("error") {
            let msg = err["message"].as_str().map(String::from).unwrap_or_else(|| err.to_string());
            return Err(LlmError::new(LlmErrorKind::Http, format!("the model server reported an error: {msg}")));
        }
        if self.model.is_empty() {
            self.model = v["model"].as_str().unwrap_or_default().to_string();
        }
        if v["usage"].is_object() {
            self.usage = usage(&v["usage"]);
        }
        let Some(choice) = v["choices"].get(0) else { return Ok(false) };
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(t);
            on_delta(Delta::Text { text: t.to_string() });
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for c in calls {
                let index = c["index"].as_u64().unwrap_or(self.calls.len().saturating_sub(1) as u64) as usize;
                if index > 64 {
                    return Err(LlmError::bad_response("a tool call index out of range", data));
                }
                while self.calls.len() <= index {
                    let n = self.calls.len();
                    self.calls.push(ToolCall {
                        id: format!("call_{n}"),
                        name: String::new(),
                        arguments: String::new(),
                    });
                }
                let call = &mut self.calls[index];
                if let Some(id) = c["id"].as_str() {
                    call.id = id.to_string();
                }
                let name = c["function"]["name"].as_str().map(String::from);
                if let Some(n) = &name {
                    call.name.push_str(n);
                }
                let args = c["function"]["arguments"].as_str().unwrap_or_default().to_string();
                call.arguments.push_str(&args);
                on_delta(Delta::ToolCall { index, name, arguments: args });
            }
        }
        if let Some(f) = finish(choice["finish_reason"].as_str()) {
            self.finish = Some(f);
        }
        Ok(false)
    }

    pub fn finish(self) -> Result<ChatResponse, LlmError> {
        let Some(finish) = self.finish else {
            return Err(LlmError::new(
                LlmErrorKind::BadResponse,
                if self.done {
                    "the model server ended the stream without a finish reason"
                } else {
                    "the model server's stream ended early (connection closed mid-reply)"
                },
            ));
        };
        Ok(ChatResponse { text: self.text, tool_calls: self.calls, finish, usage: self.usage, model: self.model })
    }
}
