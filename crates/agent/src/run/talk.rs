//! The exchange with the model: the plan it wrote beside its code, and each
//! turn with Quarry's reply, as the model will read them next time.

use quarry_llm::{ChatResponse, Message, ToolCall};

use super::Run;
use crate::reply::strip_fences;
use crate::Event;

impl Run<'_> {
    /// The model's words beside its code, as the step's plan.
    pub(super) fn emit_plan(&mut self, resp: &ChatResponse) {
        let plan = strip_fences(resp.text.trim());
        if !plan.trim().is_empty() {
            self.emit(Event::Plan { text: plan.trim().to_string() });
        }
    }

    /// The model's turn and Quarry's reply to it, as the model sees them next time.
    pub(super) fn converse(&mut self, resp: &ChatResponse, call: &Option<ToolCall>, reply: String) {
        match call {
            Some(c) => {
                self.messages.push(Message::assistant(resp.text.clone(), vec![c.clone()]));
                self.messages.push(Message::tool_result(c.id.clone(), reply));
            }
            None => {
                self.messages.push(Message::assistant(resp.text.clone(), Vec::new()));
                self.messages.push(Message::user(reply));
            }
        }
    }
}
