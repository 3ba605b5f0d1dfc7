//! Charts as Vega-Lite specs bound to the result table, built here
//! deterministically from the model's proposal (a type and column names)
//! and the result's shape and types — never by running plotting code.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use quarry_types::ColumnType;

use crate::answer::Table;

/// What the model may propose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChartProposal {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

/// The charts Quarry draws: the one list the tool schema, the prompt and
/// the builder share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    Bar,
    Line,
    Scatter,
    Histogram,
}

impl ChartKind {
    pub const ALL: [ChartKind; 4] = [ChartKind::Bar, ChartKind::Line, ChartKind::Scatter, ChartKind::Histogram];

    pub fn as_str(self) -> &'static str {
        match self {
            ChartKind::Bar => "bar",
            ChartKind::Line => "line",
            ChartKind::Scatter => "scatter",
            ChartKind::Histogram => "histogram",
        }
    }

    /// What a model may write for a kind ("Bar", "point" for scatter).
    pub fn parse(s: &str) -> Option<ChartKind> {
        match s.trim().to_lowercase().as_str() {
            "point" => Some(ChartKind::Scatter),
            k => ChartKind::ALL.into_iter().find(|c| c.as_str() == k),
        }
    }
}

/// Rows put into a spec at most.
pub const MAX_POINTS: usize = 5000;

const CHART_WORDS: &[&str] =
    &["plot", "chart", "graph", "trend", "visuali", "histogram", "distribution", "bar", "line"];

/// Does the question ask for a chart?
pub fn asked_for(question: &str) -> bool {
    let q = question.to_lowercase();
    CHART_WORDS.iter().any(|w| q.contains(w))
}

fn vl_type(dtype: Option<ColumnType>) -> &'static str {
    match dtype {
        Some(ColumnType::Integer | ColumnType::Float) => "quantitative",
        Some(ColumnType::Date | ColumnType::DateTime) => "temporal",
        _ => "nominal",
    }
}

fn numeric(dtype: Option<ColumnType>) -> bool {
    dtype.is_some_and(ColumnType::is_numeric)
}

/// A valid spec for `proposal` over `table`, or the best default when the
/// proposal does not fit the result (or there is none and the question asks
/// for a chart). `None` when no chart fits.
pub fn build(proposal: Option<&ChartProposal>, table: &Table, question: &str) -> Option<Value> {
    if table.rows.is_empty() || table.columns.is_empty() {
        return None;
    }
    let col = |name: &Option<String>| -> Option<usize> {
        let n = name.as_deref()?.trim();
        table
            .columns
            .iter()
            .position(|c| c.name == n)
            .or_else(|| table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(n)))
    };
    let fitted = proposal.and_then(|p| {
        let kind = ChartKind::parse(&p.kind)?;
        let (x, y, color) = (col(&p.x), col(&p.y), col(&p.color));
        let t = |i: usize| table.columns[i].dtype;
        let ok = match kind {
            ChartKind::Bar | ChartKind::Line => matches!((x, y), (Some(x), Some(y)) if numeric(t(y)) && x != y),
            ChartKind::Scatter => matches!((x, y), (Some(x), Some(y)) if numeric(t(x)) && numeric(t(y))),
            ChartKind::Histogram => matches!(x, Some(x) if numeric(t(x))),
        };
        ok.then(|| (kind, x, y, color, p.title.clone()))
    });
    let (kind, x, y, color, title) = match fitted {
        Some(f) => f,
        None if proposal.is_some() || asked_for(question) => default_for(table)?,
        None => return None,
    };
    Some(spec(table, kind, x, y, color, title.or_else(|| Some(question.trim().to_string()))))
}

type Fit = (ChartKind, Option<usize>, Option<usize>, Option<usize>, Option<String>);

fn default_for(table: &Table) -> Option<Fit> {
    let t = |i: usize| table.columns[i].dtype;
    let n = table.columns.len();
    let date = (0..n).find(|&i| matches!(t(i), Some(ColumnType::Date | ColumnType::DateTime)));
    let text = (0..n).find(|&i| t(i) == Some(ColumnType::Text));
    let nums: Vec<usize> = (0..n).filter(|&i| numeric(t(i))).collect();
    let y = *nums.last()?;
    if let Some(d) = date {
        let color = text.filter(|_| table.rows.len() > 1);
        return Some((ChartKind::Line, Some(d), Some(y), color, None));
    }
    if let Some(k) = text {
        return Some((ChartKind::Bar, Some(k), Some(y), None, None));
    }
    if nums.len() >= 2 {
        return Some((ChartKind::Scatter, Some(nums[0]), Some(nums[1]), None, None));
    }
    Some((ChartKind::Histogram, Some(y), None, None, None))
}

fn spec(
    table: &Table,
    kind: ChartKind,
    x: Option<usize>,
    y: Option<usize>,
    color: Option<usize>,
    title: Option<String>,
) -> Value {
    let values: Vec<Value> = table
        .rows
        .iter()
        .take(MAX_POINTS)
        .map(|r| {
            let mut m = Map::new();
            for (c, v) in table.columns.iter().zip(r) {
                m.insert(c.name.clone(), v.clone());
            }
            Value::Object(m)
        })
        .collect();
    let field = |i: usize| {
        let c = &table.columns[i];
        json!({"field": field_ref(&c.name), "type": vl_type(c.dtype), "title": c.name})
    };
    let mut encoding = Map::new();
    let mark = match kind {
        ChartKind::Histogram => {
            let xi = x.unwrap_or(0);
            let mut xe = field(xi);
            xe["bin"] = json!(true);
            encoding.insert("x".into(), xe);
            encoding.insert("y".into(), json!({"aggregate": "count", "type": "quantitative", "title": "count"}));
            "bar"
        }
        ChartKind::Scatter => {
            encoding.insert("x".into(), field(x.unwrap_or(0)));
            encoding.insert("y".into(), field(y.unwrap_or(0)));
            "point"
        }
        k @ (ChartKind::Bar | ChartKind::Line) => {
            let xi = x.unwrap_or(0);
            let mut xe = field(xi);
            if k == ChartKind::Bar && vl_type(table.columns[xi].dtype) == "nominal" {
                xe["sort"] = json!("-y");
            }
            encoding.insert("x".into(), xe);
            encoding.insert("y".into(), field(y.unwrap_or(0)));
            k.as_str()
        }
    };
    if let Some(c) = color {
        if Some(c) != x && Some(c) != y {
            let mut ce = field(c);
            ce["type"] = json!("nominal");
            encoding.insert("color".into(), ce);
        }
    }
    let tooltip: Vec<Value> = (0..table.columns.len()).map(field).collect();
    encoding.insert("tooltip".into(), json!(tooltip));
    let mut s = json!({
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": values},
        "mark": {"type": mark, "tooltip": true},
        "encoding": encoding,
        "width": "container",
    });
    if let Some(t) = title {
        s["title"] = json!(crate::quote::data_str(&t, 120));
    }
    s
}

/// Axis, legend and tooltip titles as the file wrote its headers
/// ("Persons tested positive by RDT / ≥5yrs") instead of the SQL names,
/// for result columns named like a column of `tables`.
pub fn with_labels(spec: &mut Value, tables: &[quarry_ingest::catalog::TableEntry]) {
    let label = |name: &str| {
        tables
            .iter()
            .flat_map(|t| t.columns.iter())
            .find(|c| c.name == name && !c.label.trim().is_empty() && c.label != c.name)
            .map(|c| c.label.clone())
    };
    let Some(enc) = spec.get_mut("encoding").and_then(Value::as_object_mut) else { return };
    for (_, e) in enc.iter_mut() {
        let items: Vec<&mut Value> = match e {
            Value::Array(a) => a.iter_mut().collect(),
            other => vec![other],
        };
        for item in items {
            if let Some(l) = item.get("title").and_then(Value::as_str).and_then(label) {
                item["title"] = Value::String(crate::quote::data_str(&l, 120));
            }
        }
    }
}

/// The proposal a spec built here was drawn from (its kind and columns),
/// so a saved analysis draws the same chart over a new result.
pub fn proposal_of(spec: &Value) -> Option<ChartProposal> {
    let enc = &spec["encoding"];
    let title = |k: &str| enc[k]["title"].as_str().map(str::to_string);
    let kind = match spec["mark"]["type"].as_str()? {
        "bar" if enc["x"]["bin"] == json!(true) => ChartKind::Histogram,
        "point" => ChartKind::Scatter,
        other => ChartKind::parse(other)?,
    };
    let y = if kind == ChartKind::Histogram { None } else { title("y") };
    Some(ChartProposal { kind: kind.as_str().into(), x: title("x"), y, color: title("color"), title: None })
}

/// A column name as a Vega-Lite field reference: `.` and `[]` mean nested
/// access there, so they (and quotes and backslashes) are escaped with `\`.
pub fn field_ref(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '.' | '[' | ']' | '"' | '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Column;

    fn table(cols: &[(&str, &str)], rows: Vec<Vec<Value>>) -> Table {
        Table {
            columns: cols
                .iter()
                .map(|(n, t)| Column {
                    name: n.to_string(),
                    dtype: ColumnType::ALL.into_iter().find(|c| c.as_str() == *t),
                })
                .collect(),
            rows,
            truncated: false,
        }
    }

    /// Field names with `"`, `]` or `.` are escaped in the encoding (Vega-Lite
    /// reads those as nested access) and stay raw in the data and titles.
    #[test]
    fn field_names_are_escaped_for_vega_lite() {
        let name = "a.b[\"x\"]";
        let t = table(&[("state", "text"), (name, "float")], vec![vec![json!("Kano"), json!(0.3)]]);
        let p =
            ChartProposal { kind: "bar".into(), x: Some("state".into()), y: Some(name.into()), ..Default::default() };
        let s = build(Some(&p), &t, "chart").unwrap();
        assert_eq!(s["encoding"]["y"]["field"], "a\\.b\\[\\\"x\\\"\\]");
        assert_eq!(s["encoding"]["y"]["title"], name);
        assert_eq!(s["data"]["values"][0][name], 0.3);
    }

    #[test]
    fn proposals_are_validated_and_defaults_fill_in() {
        let t = table(
            &[("state", "text"), ("tpr", "float")],
            vec![vec![json!("Kano"), json!(0.3)], vec![json!("Oyo"), json!(0.2)]],
        );
        let p =
            ChartProposal { kind: "bar".into(), x: Some("state".into()), y: Some("tpr".into()), ..Default::default() };
        let s = build(Some(&p), &t, "TPR by state").unwrap();
        assert_eq!(s["mark"]["type"], "bar");
        assert_eq!(s["encoding"]["x"]["field"], "state");
        assert_eq!(s["encoding"]["y"]["type"], "quantitative");
        assert_eq!(s["data"]["values"][1]["state"], "Oyo");
        // A proposal naming a column that does not exist falls back to a fitting default.
        let bad =
            ChartProposal { kind: "line".into(), x: Some("month".into()), y: Some("tpr".into()), ..Default::default() };
        let s = build(Some(&bad), &t, "q").unwrap();
        assert_eq!(s["mark"]["type"], "bar");
        assert_eq!(s["encoding"]["x"]["field"], "state");
        // No proposal, no chart word: no chart.
        assert!(build(None, &t, "TPR by state").is_none());
        // Asked for a trend over dates: a line.
        let d = table(&[("month", "date"), ("n", "integer")], vec![vec![json!("2024-01-01"), json!(3)]]);
        let s = build(None, &d, "plot the monthly trend").unwrap();
        assert_eq!((s["mark"]["type"].as_str(), s["encoding"]["x"]["type"].as_str()), (Some("line"), Some("temporal")));
        // Text-only results cannot be charted.
        let txt = table(&[("a", "text")], vec![vec![json!("x")]]);
        assert!(build(None, &txt, "chart it").is_none());
    }
}
