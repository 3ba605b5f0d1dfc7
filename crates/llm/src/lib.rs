//! # quarry-llm: talking to whatever model the user runs
//!
//! Owns the wire protocols to language models and nothing else: no prompts,
//! no data, no tools' meaning. The agent depends on the [`ChatModel`] trait.
//!
//! Where work happens:
//! - [`config`]: [`LlmConfig`], resolved from flags, environment and
//!   `quarry.toml` in one place; the key is a [`config::Secret`] that never
//!   prints.
//! - [`client`]: [`Client`] speaks OpenAI Chat Completions (OpenAI, Ollama,
//!   vLLM, llama.cpp, LM Studio, OpenRouter) and Anthropic Messages over
//!   HTTP with streaming (SSE), tool calls, JSON-schema output, usage,
//!   timeouts, retries with backoff, and cancellation.
//! - [`openai`], [`anthropic`]: request bodies and reply/stream parsing.
//! - [`quirks`]: what real models do instead (fenced code, sloppy JSON).
//!
//! Only this crate makes HTTP requests to models; workers never see it.

pub mod anthropic;
pub mod client;
pub mod config;
pub mod discover;
pub mod error;
pub mod openai;
pub mod quirks;
pub mod types;

pub use client::{install_crypto, ChatModel, Client};
pub use config::{LlmConfig, LlmOverrides, Provider, Secret};
pub use error::{LlmError, LlmErrorKind};
pub use tokio_util::sync::CancellationToken;
pub use types::{ChatRequest, ChatResponse, Delta, Finish, Message, Role, Tool, ToolCall, Usage};
