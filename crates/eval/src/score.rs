//! Scoring one answer as its suite defines it. DABench's rule: a sub-answer
//! is written `@name[value]` and is right when its text equals the label or
//! both read as numbers within 1e-6; a missing one is wrong. Quarry's own
//! kinds: a `number` is right when the answer's first sentence (or its
//! one-cell result) holds it within the tolerance; `text`, `list` and
//! `one_of` look for whole words, ignoring case.

use quarry_types::Table;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::case::Expected;

/// Right sub-answers of all a case has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Score {
    pub right: usize,
    pub total: usize,
}

impl Score {
    /// Every sub-answer right (DABench's ABQ counts these).
    pub fn all_right(&self) -> bool {
        self.total > 0 && self.right == self.total
    }
}

/// The `@name[value]` pairs of a text, in order.
pub fn named(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        rest = &rest[at + 1..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let after = &rest[name.len()..];
        if name.is_empty() || !after.starts_with('[') {
            continue;
        }
        if let Some(close) = after.find(']') {
            out.push((name, after[1..close].trim().to_string()));
            rest = &after[close + 1..];
        }
    }
    out
}

fn number(s: &str) -> Option<f64> {
    s.trim().trim_end_matches('%').replace(',', "").parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The label's text as the suite wrote it.
fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Equal as text, or as numbers within `tolerance`.
pub fn same(label: &str, got: &str, tolerance: f64) -> bool {
    if label.trim() == got.trim() {
        return true;
    }
    matches!((number(label), number(got)), (Some(a), Some(b)) if (a - b).abs() <= tolerance)
}

/// The numbers written in a text (`49,750`, `-3.2`, `53.9%`).
fn numbers_in(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts =
            chars[i].is_ascii_digit() || (chars[i] == '-' && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()));
        let inside_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if starts && !inside_word {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || ((chars[j] == '.' || chars[j] == ',') && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())))
            {
                j += 1;
            }
            let s: String = chars[i..j].iter().collect();
            out.extend(number(&s));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The answer's first sentence (up to a full stop followed by a space, or the first line).
fn first_sentence(text: &str) -> &str {
    let line = text.trim().lines().next().unwrap_or_default();
    match line.find(". ") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Whether `phrase` occurs in `text` as whole words, ignoring case.
fn position(text: &str, phrase: &str) -> Option<usize> {
    let (text, phrase) = (text.to_lowercase(), phrase.trim().to_lowercase());
    if phrase.is_empty() {
        return None;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    text.match_indices(&phrase)
        .find(|(i, _)| !word(text[..*i].chars().next_back()) && !word(text[i + phrase.len()..].chars().next()))
        .map(|(i, _)| i)
}

/// Score `answer` (the narrative) and its result `table` against `expected`.
pub fn score(expected: &Expected, answer: &str, table: Option<&Table>) -> Score {
    let one = |right: bool| Score { right: usize::from(right), total: 1 };
    match expected {
        Expected::Map { values, tolerance } => {
            let got = named(answer);
            let right = values
                .iter()
                .filter(|(name, label)| {
                    got.iter().find(|(n, _)| n == *name).is_some_and(|(_, v)| same(&label_text(label), v, *tolerance))
                })
                .count();
            Score { right, total: values.len() }
        }
        Expected::Number { value, tolerance } => {
            let mut candidates = numbers_in(first_sentence(answer));
            if let Some(t) = table.filter(|t| t.rows.len() == 1 && t.columns.len() == 1) {
                candidates.extend(t.rows[0][0].as_f64());
            }
            one(candidates.iter().any(|c| (c - value).abs() <= *tolerance))
        }
        Expected::Text { value } => one(position(answer, value).is_some()),
        Expected::OneOf { values } => one(values.iter().any(|v| position(answer, v).is_some())),
        Expected::List { values, ordered } => {
            let at: Vec<Option<usize>> = values.iter().map(|v| position(answer, v)).collect();
            let all = at.iter().all(Option::is_some);
            one(all && (!ordered || at.windows(2).all(|w| w[0] < w[1])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> Expected {
        Expected::Map { values: pairs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect(), tolerance: 1e-6 }
    }

    #[test]
    fn dabench_sub_answers_are_read_from_the_format() {
        assert_eq!(
            named("so @mean_fare[34.65] and @is_normal[ no ]."),
            [("mean_fare".into(), "34.65".into()), ("is_normal".into(), "no".into())]
        );
        let e = map(&[("mean_fare", "34.65"), ("is_normal", "no")]);
        assert_eq!(score(&e, "@mean_fare[34.650000] @is_normal[no]", None), Score { right: 2, total: 2 });
        assert_eq!(
            score(&e, "@mean_fare[34.66] @is_normal[No]", None),
            Score { right: 0, total: 2 },
            "text is case-sensitive"
        );
        assert_eq!(score(&e, "The mean fare is 34.65.", None), Score { right: 0, total: 2 }, "missing counts as wrong");
        assert!(!score(&e, "@mean_fare[34.65]", None).all_right());
    }

    #[test]
    fn own_kinds_score_as_documented() {
        let n = Expected::Number { value: 49750.0, tolerance: 0.5 };
        assert_eq!(score(&n, "In total 49,750 people tested positive. Of 92,336 tested.", None).right, 1);
        assert_eq!(score(&n, "Positives were high. In all 49,750.", None).right, 0, "the first sentence answers");
        let pct = Expected::Number { value: 53.9, tolerance: 0.05 };
        assert_eq!(score(&pct, "Kano's rate in 2024 was 53.9%.", None).right, 1);
        assert_eq!(score(&Expected::Text { value: "Kano".into() }, "KANO had the most.", None).right, 1);
        assert_eq!(score(&Expected::Text { value: "Kano".into() }, "Kanobi had the most.", None).right, 0);
        let list = Expected::List { values: vec!["Kano".into(), "Lagos".into()], ordered: true };
        assert_eq!(score(&list, "Kano, then Lagos.", None).right, 1);
        assert_eq!(score(&list, "Lagos, then Kano.", None).right, 0);
        let one_of = Expected::OneOf { values: vec!["yes".into(), "normal".into()] };
        assert_eq!(score(&one_of, "It is normal.", None).right, 1);
    }
}
