//! The tools the model may call, defined once: each [`ToolKind`] knows its
//! name, the argument that carries its code, its description and JSON
//! schema. The tool list sent to the model, the JSON-mode schema, the
//! "there is no tool named …" feedback and the reply parser all read this
//! list; a new tool is one variant here and one step method in `run`.

use quarry_llm::Tool;
use serde_json::{json, Value};

use crate::chart::ChartKind;

/// Most values one `check_values` call may name.
pub const MAX_CHECKED: usize = 50;

/// Most options one `ask_user` call may offer.
pub const MAX_OPTIONS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    RunSql,
    RunPython,
    CheckValues,
    AskUser,
    FinalAnswer,
}

impl ToolKind {
    /// In the order the model is shown them.
    pub const ALL: [ToolKind; 5] =
        [ToolKind::RunSql, ToolKind::RunPython, ToolKind::CheckValues, ToolKind::AskUser, ToolKind::FinalAnswer];

    pub fn name(self) -> &'static str {
        match self {
            ToolKind::RunSql => "run_sql",
            ToolKind::RunPython => "run_python",
            ToolKind::CheckValues => "check_values",
            ToolKind::AskUser => "ask_user",
            ToolKind::FinalAnswer => "final_answer",
        }
    }

    /// The tools offered: `run_python` only with a Python kernel.
    pub fn offered(python: bool) -> Vec<ToolKind> {
        ToolKind::ALL.into_iter().filter(|t| python || *t != ToolKind::RunPython).collect()
    }

    /// The offered tool called `name`, if any.
    pub fn named(name: &str, python: bool) -> Option<ToolKind> {
        ToolKind::offered(python).into_iter().find(|t| t.name() == name)
    }

    /// The string argument holding the code to run (none for the others).
    pub fn code_arg(self) -> Option<&'static str> {
        match self {
            ToolKind::RunSql => Some("sql"),
            ToolKind::RunPython => Some("code"),
            ToolKind::CheckValues | ToolKind::AskUser | ToolKind::FinalAnswer => None,
        }
    }

    fn description(self) -> &'static str {
        match self {
            ToolKind::RunSql => {
                "Run exactly one read-only SQL query (SELECT or WITH) over the user's tables. \
                 Quarry runs it and reports how it went."
            }
            ToolKind::RunPython => {
                "Run pandas code in Quarry's sandboxed Python kernel, for what SQL cannot do \
                 (statistical tests, regressions, reshaping, custom cleaning, matplotlib figures). \
                 Variables persist between calls in this conversation."
            }
            ToolKind::CheckValues => {
                "Check how values you expect are written in a column: for each value you name, whether it \
                 exists and in how many rows (also ignoring case and spaces). Tells you nothing about values \
                 you did not name; use it before filtering on a spelling you have not seen."
            }
            ToolKind::AskUser => {
                "Ask the user one short question when theirs is ambiguous (two tables fit, a measure that is not \
                 defined, a value that matches several spellings), with 2 to 4 options to choose from. The question \
                 resumes with their choice. Ask at most once; when one reading is clearly likelier, answer and state \
                 your assumption in the first sentence instead."
            }
            ToolKind::FinalAnswer => {
                "Finish: answer the question from the last successful query. Optionally propose a chart \
                 of that query's result."
            }
        }
    }

    fn parameters(self) -> Value {
        match self {
            ToolKind::RunSql => json!({
                "type": "object",
                "properties": {
                    "sql": {"type": "string", "description": "One SELECT or WITH query."},
                    "purpose": {"type": "string", "description": "One short sentence: what this query computes."}
                },
                "required": ["sql"]
            }),
            ToolKind::RunPython => json!({
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "Python code; its last expression is the result."},
                    "purpose": {"type": "string", "description": "One short sentence: what this code computes."}
                },
                "required": ["code"]
            }),
            ToolKind::CheckValues => json!({
                "type": "object",
                "properties": {
                    "table": {"type": "string", "description": "The table's name."},
                    "column": {"type": "string", "description": "The column's name."},
                    "values": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_CHECKED,
                               "description": "The spellings to look for, e.g. [\"Kano\", \"Kano State\"]."}
                },
                "required": ["table", "column", "values"]
            }),
            ToolKind::AskUser => json!({
                "type": "object",
                "properties": {
                    "question": {"type": "string", "description": "One short question for the user."},
                    "options": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": MAX_OPTIONS,
                                "description": "The readings to choose from, each a few words."}
                },
                "required": ["question", "options"]
            }),
            ToolKind::FinalAnswer => json!({
                "type": "object",
                "properties": {
                    "answer": {"type": "string", "description": "A short answer for the user."},
                    "step": {"type": "integer", "description": "The step whose result the answer presents, when it is not the last one."},
                    "chart": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": ChartKind::ALL.map(ChartKind::as_str)},
                            "x": {"type": "string", "description": "A column of the last result."},
                            "y": {"type": "string", "description": "A numeric column of the last result."},
                            "color": {"type": "string", "description": "Optional column to colour by."}
                        },
                        "required": ["type", "x"]
                    }
                },
                "required": ["answer"]
            }),
        }
    }

    /// The tool as sent to the model.
    pub fn spec(self) -> Tool {
        Tool { name: self.name().into(), description: self.description().into(), parameters: self.parameters() }
    }
}

/// The offered tools' names as a sentence: "run_sql, run_python or final_answer".
pub fn names(python: bool) -> String {
    let names: Vec<&str> = ToolKind::offered(python).into_iter().map(ToolKind::name).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// The JSON shape asked for when a server offers constrained output but no tools.
pub fn json_schema(python: bool) -> Value {
    let actions: Vec<&str> = ToolKind::offered(python).into_iter().map(ToolKind::name).collect();
    let mut schema = json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": actions},
            "sql": {"type": "string"},
            "table": {"type": "string"},
            "column": {"type": "string"},
            "values": {"type": "array", "items": {"type": "string"}},
            "question": {"type": "string"},
            "options": {"type": "array", "items": {"type": "string"}},
            "answer": {"type": "string"},
            "step": {"type": "integer"},
            "chart": {"type": "object"}
        },
        "required": ["action"]
    });
    if python {
        schema["properties"]["code"] = json!({"type": "string"});
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_is_offered_only_with_a_kernel() {
        assert_eq!(names(false), "run_sql, check_values, ask_user or final_answer");
        assert_eq!(names(true), "run_sql, run_python, check_values, ask_user or final_answer");
        assert_eq!(ToolKind::named("run_python", false), None);
        assert_eq!(ToolKind::named("run_python", true), Some(ToolKind::RunPython));
        assert_eq!(
            json_schema(false)["properties"]["action"]["enum"],
            json!(["run_sql", "check_values", "ask_user", "final_answer"])
        );
    }
}
