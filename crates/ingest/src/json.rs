//! JSON documents and NDJSON lines, as a grid of cells with a header row, so
//! they go through the same shaping and inference as spreadsheets.

use std::path::Path;

use calamine::Data;
use serde_json::Value;

use crate::detect::Format;
use crate::error::{ErrorKind, IngestError, Result};
use crate::grid::Grid;
use crate::IngestOptions;

fn bad(e: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        ErrorKind::Corrupt,
        format!("the JSON could not be parsed ({e})"),
        "check that the file is complete, valid JSON",
    )
}

fn cell(v: &Value) -> Data {
    match v {
        Value::Null => Data::Empty,
        Value::Bool(b) => Data::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Data::Int(i),
            None => Data::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Data::String(s.clone()),
        other => Data::String(other.to_string()),
    }
}

fn records(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Object(mut o) => {
            // {"data": [...]} and similar wrappers: the single array of records inside.
            let arrays: Vec<String> = o
                .iter()
                .filter(
                    |(_, v)| matches!(v, Value::Array(a) if a.first().is_some_and(|r| r.is_object() || r.is_array())),
                )
                .map(|(k, _)| k.clone())
                .collect();
            if arrays.len() == 1 {
                match o.remove(&arrays[0]) {
                    Some(Value::Array(a)) => Ok(a),
                    _ => Ok(Vec::new()),
                }
            } else {
                Ok(vec![Value::Object(o)])
            }
        }
        _ => Err(IngestError::new(
            ErrorKind::NotTabular,
            "the JSON is a single value, not a table",
            "give an array of objects, an array of arrays, or one object per line",
        )),
    }
}

pub fn read(path: &Path, format: Format, opts: &IngestOptions) -> Result<Grid> {
    let len = std::fs::metadata(path)?.len();
    if len > opts.max_json_bytes {
        return Err(IngestError::new(
            ErrorKind::TooLarge,
            format!("the JSON file is {} MiB, above the {} MiB limit for JSON", len >> 20, opts.max_json_bytes >> 20),
            "convert it to NDJSON split into parts, CSV or Parquet",
        ));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut crate::detect::open_regular(path)?, &mut bytes)?;
    let text = String::from_utf8_lossy(bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(&bytes)).into_owned();
    drop(bytes);
    let recs: Vec<Value> = if format == Format::Ndjson {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if line.len() > opts.max_record_bytes {
                return Err(IngestError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "line {} is {} MiB long, above the {} MiB limit for one record",
                        i + 1,
                        line.len() >> 20,
                        opts.max_record_bytes >> 20
                    ),
                    "split the record, or export the data as CSV or Parquet",
                ));
            }
            out.push(serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?);
        }
        out
    } else {
        records(serde_json::from_str(&text).map_err(bad)?)?
    };
    let mut keys: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let arrays = recs.first().is_some_and(Value::is_array);
    if !arrays {
        for r in &recs {
            if let Value::Object(o) = r {
                for k in o.keys() {
                    if !index.contains_key(k) {
                        index.insert(k.clone(), keys.len());
                        keys.push(k.clone());
                    }
                }
            }
        }
    }
    let width =
        if arrays { recs.iter().filter_map(|r| r.as_array().map(Vec::len)).max().unwrap_or(0) } else { keys.len() };
    if width > opts.max_columns {
        return Err(IngestError::new(
            ErrorKind::TooLarge,
            format!("the JSON has {width} distinct fields, above the limit of {} columns", opts.max_columns),
            "keep the fields you need, or raise max_columns (quarry --ingest-limit max_columns=N)",
        ));
    }
    if let Some((row, field)) = oversized_value(&recs, &keys, arrays, opts.max_record_bytes) {
        return Err(IngestError::new(
            ErrorKind::TooLarge,
            format!(
                "record {row} holds a value in '{field}' longer than the {} MiB limit for one record",
                opts.max_record_bytes >> 20
            ),
            "shorten that value, or export the data as CSV or Parquet",
        ));
    }
    let mut rows: Vec<Vec<Data>> = Vec::with_capacity(recs.len() + 1);
    if !arrays {
        rows.push(keys.iter().map(|k| Data::String(k.clone())).collect());
    }
    // Records are consumed as they become rows, so the parsed tree and the
    // grid are not both held whole.
    for r in recs {
        match &r {
            Value::Object(o) => {
                let mut row = vec![Data::Empty; keys.len()];
                for (k, v) in o {
                    row[index[k]] = cell(v);
                }
                rows.push(row);
            }
            Value::Array(a) => rows.push(a.iter().map(cell).collect()),
            other => rows.push(vec![cell(other)]),
        }
    }
    let width = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    Ok(Grid { rows, cols: (0..width).collect(), ..Default::default() })
}

/// The first record (1-based) and field whose text value exceeds `max` bytes.
fn oversized_value(recs: &[Value], keys: &[String], arrays: bool, max: usize) -> Option<(usize, String)> {
    let long = |v: &Value| matches!(v, Value::String(s) if s.len() > max);
    for (i, r) in recs.iter().enumerate() {
        match r {
            Value::Object(o) => {
                if let Some((k, _)) = o.iter().find(|(_, v)| long(v)) {
                    return Some((i + 1, crate::infer::truncate(k, 60)));
                }
            }
            Value::Array(a) if arrays => {
                if let Some(j) = a.iter().position(long) {
                    return Some((i + 1, format!("column {}", j + 1)));
                }
            }
            other if long(other) => return Some((i + 1, keys.first().cloned().unwrap_or_default())),
            _ => {}
        }
    }
    None
}
