//! Tool calls small models write as text, when the server has no tool-call
//! parser or the model was never taught one: `<tool_call>{…}</tool_call>`
//! (Qwen, Hermes), `<|python_tag|>` (Llama 3.x), a JSON call in the text in
//! OpenAI, Anthropic or ad-hoc shape, ReAct's `Action:` / `Action Input:`,
//! and a bare SQL statement. Each is read as the call it means; a shape
//! that names no tool Quarry has becomes feedback. Fenced blocks are read
//! in `reply`.

use serde_json::{Map, Value};

use crate::tools::{self, ToolKind};

/// A call found in text: the tool's name and its arguments.
pub struct TextCall {
    pub name: String,
    pub args: Value,
}

/// The call `text` writes out, if it writes one.
pub fn find(text: &str, python: bool) -> Option<TextCall> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    tagged(t)
        .or_else(|| python_tag(t, python))
        .or_else(|| quarry_llm::quirks::lenient_json(t).and_then(|v| json_call(&v)))
        .or_else(|| react(t))
        .or_else(|| bare_sql(t))
}

/// `<tool_call>{"name": …, "arguments": {…}}</tool_call>`.
fn tagged(t: &str) -> Option<TextCall> {
    let start = t.find("<tool_call>")? + "<tool_call>".len();
    let inner = match t[start..].find("</tool_call>") {
        Some(end) => &t[start..start + end],
        None => &t[start..],
    };
    json_call(&quarry_llm::quirks::lenient_json(inner)?)
}

/// `<|python_tag|>` then a JSON call, or Python code for the code tool.
fn python_tag(t: &str, python: bool) -> Option<TextCall> {
    let rest = t.split_once("<|python_tag|>")?.1;
    let rest = rest.split("<|eom_id|>").next().unwrap_or(rest).split("<|eot_id|>").next().unwrap_or(rest).trim();
    if let Some(call) = quarry_llm::quirks::lenient_json(rest).and_then(|v| json_call(&v)) {
        return Some(call);
    }
    let name = if python { ToolKind::RunPython.name() } else { ToolKind::RunSql.name() };
    let arg = if python { "code" } else { "sql" };
    (!rest.is_empty())
        .then(|| TextCall { name: name.into(), args: Value::Object(Map::from_iter([(arg.into(), rest.into())])) })
}

/// A JSON value shaped like a call: `{"name", "arguments"|"parameters"}`,
/// `{"type": "tool_use", "name", "input"}`, `{"function": {…}}`,
/// `{"tool"|"tool_name"|"action", …}`, or just `{"sql": …}` / `{"code": …}`.
pub fn json_call(v: &Value) -> Option<TextCall> {
    if let Value::Array(items) = v {
        return items.iter().find_map(json_call);
    }
    let o = v.as_object()?;
    if let Some(f) = o.get("function").filter(|f| f.is_object()) {
        return json_call(f);
    }
    let args_of = |keys: &[&str]| keys.iter().find_map(|k| o.get(*k)).map(as_args);
    for key in ["name", "tool", "tool_name", "action"] {
        let Some(name) = o.get(key).and_then(Value::as_str) else { continue };
        let args =
            args_of(&["arguments", "parameters", "input", "tool_input", "args", "action_input"]).unwrap_or_else(|| {
                let mut rest = o.clone();
                rest.remove(key);
                Value::Object(rest)
            });
        return Some(TextCall { name: name.to_string(), args });
    }
    if o.get("sql").is_some_and(Value::is_string) {
        return Some(TextCall { name: ToolKind::RunSql.name().into(), args: v.clone() });
    }
    if o.get("code").is_some_and(Value::is_string) {
        return Some(TextCall { name: ToolKind::RunPython.name().into(), args: v.clone() });
    }
    None
}

/// Arguments given as an object, or as a JSON string of one.
fn as_args(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        other => other.clone(),
    }
}

/// ReAct: `Action: run_sql` and `Action Input: SELECT …` (or a JSON object).
fn react(t: &str) -> Option<TextCall> {
    let line = t.lines().find_map(|l| l.trim().strip_prefix("Action:"))?;
    let name = line.trim().trim_matches(['`', '"', '\'']).to_string();
    let input = t.split_once("Action Input:")?.1;
    let input = input.split("Observation:").next().unwrap_or(input).trim();
    let input = quarry_llm::quirks::fenced_blocks(input).into_iter().next().map_or(input.to_string(), |b| b.code);
    let input = input.trim().trim_matches('`').trim();
    let args = match serde_json::from_str::<Value>(input) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let arg =
                ToolKind::ALL.into_iter().find(|k| k.name() == name).and_then(ToolKind::code_arg).unwrap_or("answer");
            Value::Object(Map::from_iter([(arg.into(), input.trim_matches('"').into())]))
        }
    };
    Some(TextCall { name, args })
}

/// A reply that is nothing but a query: `SELECT …` or `WITH … SELECT …`.
fn bare_sql(t: &str) -> Option<TextCall> {
    let first = t.split_whitespace().next()?.to_ascii_uppercase();
    let looks = matches!(first.as_str(), "SELECT" | "WITH") && t.split_whitespace().count() >= 2;
    // Prose that happens to start with "Select" or "With" ends like a sentence
    // and has no FROM.
    let from = t.to_ascii_uppercase().split_whitespace().any(|w| w == "FROM");
    let sentence = t.ends_with(['.', '!', '?', ':']);
    (looks && (from || !sentence)).then(|| TextCall {
        name: ToolKind::RunSql.name().into(),
        args: Value::Object(Map::from_iter([("sql".into(), t.trim_end_matches(';').trim().into())])),
    })
}

/// Words for a call to a tool Quarry does not have.
pub fn unknown(name: &str, python: bool) -> String {
    format!("There is no tool named '{name}': use {}.", tools::names(python))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(text: &str) -> Option<(String, Value)> {
        find(text, false).map(|c| (c.name, c.args))
    }

    #[test]
    fn every_shape_small_models_write() {
        let q = "SELECT count(*) AS n FROM population_lga";
        let want = Some(("run_sql".to_string(), serde_json::json!({ "sql": q })));
        for text in [
            q.to_string(),
            format!("{q};"),
            format!(r#"{{"tool": "run_sql", "sql": "{q}"}}"#),
            format!(r#"<tool_call>{{"name": "run_sql", "arguments": {{"sql": "{q}"}}}}</tool_call>"#),
            format!(r#"<|python_tag|>{{"name": "run_sql", "parameters": {{"sql": "{q}"}}}}<|eom_id|>"#),
            format!(r#"{{"type": "tool_use", "id": "t1", "name": "run_sql", "input": {{"sql": "{q}"}}}}"#),
            format!(r#"{{"function": {{"name": "run_sql", "arguments": "{{\"sql\": \"{q}\"}}"}}}}"#),
            format!(
                r#"```json
{{"name": "run_sql", "arguments": {{"sql": "{q}"}}}}
```"#
            ),
            format!("Thought: count them.\nAction: run_sql\nAction Input: {q}\nObservation:"),
            format!("Action: run_sql\nAction Input: {{\"sql\": \"{q}\"}}"),
            format!(r#"{{"sql": "{q}"}}"#),
        ] {
            assert_eq!(call(&text), want, "{text}");
        }
    }

    #[test]
    fn prose_is_no_call() {
        for text in [
            "There are 42 LGAs.",
            "With the data loaded, I would count the LGAs.",
            "Select a table first.",
            "The totals are {\"Kano\": 3}.",
        ] {
            assert!(call(text).is_none(), "{text}");
        }
        assert!(call("SELECT 1").is_some(), "a query needs no FROM");
        let (name, args) = call(r#"{"name": "final_answer", "arguments": {"answer": "done"}}"#).unwrap();
        assert_eq!((name.as_str(), args["answer"].as_str()), ("final_answer", Some("done")));
    }
}
