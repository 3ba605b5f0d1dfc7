//! Reading the model's reply leniently: a tool call, a JSON action (for
//! servers with constrained output but no tools), a fenced ```sql /
//! ```python block, or a call written as text (`shapes`: the smallest
//! models) — into one [`Action`]. An answer that is empty, or is itself
//! code or a call, is never taken as the answer.

use quarry_llm::{ChatResponse, ToolCall};
use serde_json::Value;

use crate::chart::ChartProposal;
use crate::tools::ToolKind;
use crate::Protocol;

/// What the model asked for in one reply.
pub enum Action {
    Sql {
        sql: String,
        call: Option<ToolCall>,
    },
    Python {
        code: String,
        call: Option<ToolCall>,
    },
    Final {
        text: String,
        chart: Option<ChartProposal>,
        /// The step whose result the answer is about (the last when absent).
        step: Option<usize>,
        call: Option<ToolCall>,
    },
    /// Which of the named values a column holds (`check_values`).
    Check {
        table: String,
        column: String,
        values: Vec<String>,
        call: Option<ToolCall>,
    },
    /// A question back to the user (`ask_user`).
    Clarify {
        question: String,
        options: Vec<String>,
        call: Option<ToolCall>,
    },
    /// A reply that cannot be acted on: `feedback` says how to fix it.
    Problem {
        feedback: String,
        call: Option<ToolCall>,
    },
}

/// What Quarry says to an empty reply or answer.
pub const EMPTY: &str =
    "Your reply was empty. Run the query that answers the question with run_sql, then give the answer with final_answer.";

/// The action a reply asks for, given the protocol and whether Python runs.
pub fn interpret(resp: &ChatResponse, protocol: Protocol, python: bool) -> Action {
    settle(raw(resp, protocol, python), python)
}

/// An answer that is empty or is itself code or a call is not an answer:
/// it becomes the call it writes, or feedback.
fn settle(action: Action, python: bool) -> Action {
    let Action::Final { text, chart, step, call } = action else { return action };
    if text.trim().is_empty() {
        return Action::Problem { feedback: EMPTY.into(), call };
    }
    match crate::shapes::find(&text, python) {
        Some(c) if c.name != ToolKind::FinalAnswer.name() => match from_text_call(c, python) {
            Action::Final { .. } => Action::Final { text, chart, step, call },
            Action::Problem { feedback, .. } => Action::Problem { feedback, call },
            Action::Sql { sql, .. } if call.is_some() => Action::Problem {
                feedback: format!("Your final answer was a query. Run it with run_sql first:\n{sql}"),
                call,
            },
            Action::Python { code, .. } if call.is_some() => Action::Problem {
                feedback: format!("Your final answer was code. Run it with run_python first:\n{code}"),
                call,
            },
            other => other,
        },
        _ => Action::Final { text, chart, step, call },
    }
}

fn raw(resp: &ChatResponse, protocol: Protocol, python: bool) -> Action {
    if let Some(call) = resp.tool_calls.first() {
        return from_call(call, python);
    }
    let text = resp.text.trim();
    if protocol == Protocol::Json {
        if let Some(v) = quarry_llm::quirks::lenient_json(text).filter(|v| v.get("action").is_some()) {
            return from_json(&v, python);
        }
    }
    if resp.truncated() {
        return Action::Problem {
            feedback: "Your reply was cut off at the token limit. Reply again, shorter: just the query.".into(),
            call: None,
        };
    }
    from_text(text, python)
}

/// The action of `tool` with its code argument `code` (or the answer).
fn act(tool: ToolKind, args: &Value, call: Option<ToolCall>, feedback: impl FnOnce(&str) -> String) -> Action {
    match tool {
        ToolKind::CheckValues => return check(args, call),
        ToolKind::AskUser => return clarify(args, call),
        _ => {}
    }
    let Some(arg) = tool.code_arg() else {
        return Action::Final {
            text: args["answer"].as_str().unwrap_or_default().to_string(),
            chart: serde_json::from_value(args["chart"].clone()).ok(),
            step: args["step"].as_u64().map(|n| n as usize),
            call,
        };
    };
    match args[arg].as_str().filter(|s| !s.trim().is_empty()) {
        None => Action::Problem { feedback: feedback(arg), call },
        Some(code) if tool == ToolKind::RunSql => Action::Sql { sql: code.to_string(), call },
        Some(code) => Action::Python { code: code.to_string(), call },
    }
}

/// `check_values` with its table, column and values, or what is missing.
fn check(args: &Value, call: Option<ToolCall>) -> Action {
    let text = |k: &str| args[k].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let values: Vec<String> = args["values"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    match (text("table"), text("column")) {
        (Some(table), Some(column)) if !values.is_empty() => Action::Check { table, column, values, call },
        _ => Action::Problem {
            feedback: "check_values needs 'table', 'column' and a non-empty 'values' list of strings.".into(),
            call,
        },
    }
}

/// `ask_user` with its question and options, or what is missing.
fn clarify(args: &Value, call: Option<ToolCall>) -> Action {
    let question = args["question"].as_str().map(str::trim).unwrap_or_default().to_string();
    let options: Vec<String> = args["options"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
        })
        .unwrap_or_default();
    if question.is_empty() || options.len() < 2 || options.len() > crate::tools::MAX_OPTIONS {
        let feedback = format!(
            "ask_user needs a 'question' and 2 to {} 'options'. Or answer, stating your assumption first.",
            crate::tools::MAX_OPTIONS
        );
        return Action::Problem { feedback, call };
    }
    Action::Clarify { question, options, call }
}

fn from_call(call: &ToolCall, python: bool) -> Action {
    let call_out = Some(call.clone());
    let args = match call.parsed() {
        Ok(a) => a,
        Err(msg) => {
            return Action::Problem {
                feedback: format!("{msg}. Send the call again with valid JSON arguments."),
                call: call_out,
            }
        }
    };
    match ToolKind::named(&call.name, python) {
        Some(tool) => {
            act(tool, &args, call_out, |arg| format!("{} needs a non-empty '{arg}' string argument.", tool.name()))
        }
        None => Action::Problem { feedback: crate::shapes::unknown(&call.name, python), call: call_out },
    }
}

fn from_json(v: &Value, python: bool) -> Action {
    let tool = v["action"].as_str().and_then(|a| ToolKind::named(a, python)).unwrap_or(ToolKind::FinalAnswer);
    // JSON mode takes an empty string as given (the model fills every field).
    let code_missing = tool.code_arg().is_some_and(|arg| v[arg].as_str().is_none());
    if code_missing {
        let arg = tool.code_arg().unwrap_or_default();
        return Action::Problem { feedback: format!("action {} needs a '{arg}' string.", tool.name()), call: None };
    }
    match tool {
        ToolKind::RunSql => Action::Sql { sql: v["sql"].as_str().unwrap_or_default().to_string(), call: None },
        ToolKind::RunPython => Action::Python { code: v["code"].as_str().unwrap_or_default().to_string(), call: None },
        ToolKind::CheckValues | ToolKind::AskUser | ToolKind::FinalAnswer => act(tool, v, None, |_| String::new()),
    }
}

fn from_text(text: &str, python: bool) -> Action {
    let blocks: Vec<_> = quarry_llm::quirks::fenced_blocks(text)
        .into_iter()
        .filter(|b| {
            matches!(b.lang.as_str(), "sql" | "" | "postgresql" | "postgres" | "sqlite")
                || (python && matches!(b.lang.as_str(), "python" | "py"))
        })
        .collect();
    match blocks.last() {
        Some(b) if matches!(b.lang.as_str(), "python" | "py") => Action::Python { code: b.code.clone(), call: None },
        Some(b) => Action::Sql { sql: b.code.clone(), call: None },
        None => match crate::shapes::find(text, python) {
            Some(c) => from_text_call(c, python),
            None => Action::Final { text: text.to_string(), chart: None, step: None, call: None },
        },
    }
}

/// A call written as text, as the action it means.
fn from_text_call(c: crate::shapes::TextCall, python: bool) -> Action {
    match ToolKind::named(&c.name, python) {
        Some(tool) => act(tool, &c.args, None, |arg| format!("{} needs a non-empty '{arg}' string.", tool.name())),
        None => Action::Problem { feedback: crate::shapes::unknown(&c.name, python), call: None },
    }
}

/// The text of a reply outside its fenced code blocks: the model's plan.
pub fn strip_fences(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            inside = !inside;
            continue;
        }
        if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use quarry_llm::{Finish, Usage};

    use super::*;

    fn reply(text: &str, call: Option<(&str, &str)>) -> ChatResponse {
        ChatResponse {
            text: text.into(),
            tool_calls: call
                .map(|(name, args)| ToolCall { id: "c1".into(), name: name.into(), arguments: args.into() })
                .into_iter()
                .collect(),
            finish: Finish::Stop,
            usage: Usage::default(),
            model: "m".into(),
        }
    }

    #[test]
    fn tool_calls_json_and_fenced_blocks_read_the_same() {
        let sql = reply("", Some(("run_sql", r#"{"sql": "SELECT 1"}"#)));
        assert!(
            matches!(interpret(&sql, Protocol::Tools, false), Action::Sql { sql, call: Some(_) } if sql == "SELECT 1")
        );
        let py = reply("", Some(("run_python", r#"{"code": "1 + 1"}"#)));
        assert!(matches!(interpret(&py, Protocol::Tools, true), Action::Python { .. }));
        match interpret(&py, Protocol::Tools, false) {
            Action::Problem { feedback, .. } => {
                assert_eq!(
                    feedback,
                    "There is no tool named 'run_python': use run_sql, check_values, ask_user or final_answer."
                )
            }
            _ => panic!("run_python without a kernel is not a tool"),
        }
        let empty = reply("", Some(("run_sql", r#"{"sql": " "}"#)));
        assert!(matches!(interpret(&empty, Protocol::Tools, false),
            Action::Problem { feedback, .. } if feedback == "run_sql needs a non-empty 'sql' string argument."));
        let json = reply(r#"{"action": "run_sql", "sql": "SELECT 2"}"#, None);
        assert!(
            matches!(interpret(&json, Protocol::Json, false), Action::Sql { sql, call: None } if sql == "SELECT 2")
        );
        let json = reply(r#"{"action": "run_python"}"#, None);
        assert!(matches!(interpret(&json, Protocol::Json, true),
            Action::Problem { feedback, .. } if feedback == "action run_python needs a 'code' string."));
        let fenced = reply("First the totals.\n```sql\nSELECT 3\n```", None);
        assert!(
            matches!(interpret(&fenced, Protocol::Text, false), Action::Sql { sql, .. } if sql.trim() == "SELECT 3")
        );
        assert_eq!(strip_fences(&fenced.text).trim(), "First the totals.");
        let answer = reply("The answer is below.", None);
        assert!(
            matches!(interpret(&answer, Protocol::Text, false), Action::Final { text, .. } if text == "The answer is below.")
        );
    }

    #[test]
    fn check_values_reads_its_arguments() {
        let ok = reply("", Some(("check_values", r#"{"table": "t", "column": "state", "values": ["Kano", "Lagoz"]}"#)));
        assert!(matches!(interpret(&ok, Protocol::Tools, false),
            Action::Check { table, column, values, .. } if table == "t" && column == "state" && values == ["Kano", "Lagoz"]));
        let bad = reply("", Some(("check_values", r#"{"table": "t", "values": []}"#)));
        assert!(matches!(interpret(&bad, Protocol::Tools, false), Action::Problem { .. }));
    }

    #[test]
    fn ask_user_needs_a_question_and_options() {
        let ok = reply("", Some(("ask_user", r#"{"question": "Which table?", "options": ["lga", "state"]}"#)));
        assert!(matches!(interpret(&ok, Protocol::Tools, false),
            Action::Clarify { question, options, .. } if question == "Which table?" && options == ["lga", "state"]));
        let one = reply("", Some(("ask_user", r#"{"question": "Which table?", "options": ["lga"]}"#)));
        assert!(matches!(interpret(&one, Protocol::Tools, false), Action::Problem { .. }));
    }

    #[test]
    fn an_answer_that_is_code_or_empty_is_no_answer() {
        let bare = reply("SELECT count(*) AS n FROM population_lga", None);
        assert!(
            matches!(interpret(&bare, Protocol::Text, false), Action::Sql { sql, .. } if sql.starts_with("SELECT count"))
        );
        let qwen = reply(r#"<tool_call>{"name": "run_sql", "arguments": {"sql": "SELECT 1"}}</tool_call>"#, None);
        assert!(matches!(interpret(&qwen, Protocol::Tools, false), Action::Sql { sql, .. } if sql == "SELECT 1"));
        for empty in [reply("", None), reply("", Some(("final_answer", r#"{"answer": " "}"#)))] {
            assert!(
                matches!(interpret(&empty, Protocol::Tools, false), Action::Problem { feedback, .. } if feedback == EMPTY)
            );
        }
        let coded = reply("", Some(("final_answer", r#"{"answer": "SELECT count(*) FROM t"}"#)));
        assert!(matches!(interpret(&coded, Protocol::Tools, false),
            Action::Problem { feedback, call: Some(_) } if feedback.starts_with("Your final answer was a query")));
        let unknown = reply(r#"{"name": "web_search", "arguments": {"q": "LGAs"}}"#, None);
        assert!(matches!(interpret(&unknown, Protocol::Text, false),
            Action::Problem { feedback, .. } if feedback.contains("no tool named 'web_search'")));
    }
}
