//! Asking back: the model's `ask_user` ends the run with a question for the
//! user (an [`Event::Clarify`]); the conversation keeps it pending, and the
//! next message resumes the question with the user's choice. One question
//! back per question: a resumed run that asks again is told to answer.
//! Choosing which step's result the answer presents lives here too.

use quarry_types::Clarification;

use super::Run;
use crate::conversation::Pending;
use crate::{Answer, Conversation, Event};

impl Run<'_> {
    /// End the run with a question for the user.
    pub(super) fn clarify(mut self, conversation: &mut Conversation, asked: String, options: Vec<String>) -> Answer {
        self.emit(Event::Clarify { question: asked.clone(), options: options.clone() });
        conversation.pending =
            Some(Pending { question: self.question.to_string(), asked: asked.clone(), options: options.clone() });
        let mut answer = self.answer(false, asked.clone(), true);
        answer.clarify = Some(Clarification { question: asked, options });
        answer
    }

    /// Present the result of `step` (as the model was told it) when the
    /// model names an earlier one; a step that did not run well changes nothing.
    pub(super) fn choose_step(&mut self, step: Option<usize>) {
        let Some(n) = step else { return };
        if self.last.as_ref().is_some_and(|l| l.step == n) {
            return;
        }
        if let Some(i) = self.earlier.iter().position(|l| l.step == n) {
            let chosen = self.earlier.remove(i);
            if let Some(before) = self.last.replace(chosen) {
                self.earlier.push(before);
            }
        }
    }
}
