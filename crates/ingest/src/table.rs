//! What ingest knows about a table: columns, notes, rows kept out.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

/// Column types as Quarry shows them. Each maps to one Arrow type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Float,
    Boolean,
    Date,
    DateTime,
    Text,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Integer => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::DateTime => DataType::Timestamp(TimeUnit::Millisecond, None),
            ColumnType::Text => DataType::Utf8,
        }
    }

    /// The closest Quarry type for an Arrow type (for Parquet and JSON input).
    pub fn from_arrow(t: &DataType) -> Option<ColumnType> {
        Some(match t {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => ColumnType::Integer,
            DataType::UInt64 | DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float,
            DataType::Decimal128(..) | DataType::Decimal256(..) => ColumnType::Float,
            DataType::Boolean => ColumnType::Boolean,
            DataType::Date32 | DataType::Date64 => ColumnType::Date,
            DataType::Timestamp(..) => ColumnType::DateTime,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Integer | ColumnType::Float)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::DateTime => "datetime",
            ColumnType::Text => "text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Unique, SQL-friendly name (`rdt_positive_lt5yrs`).
    pub name: String,
    /// The header as written in the file, for display.
    pub label: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
}

/// Something ingest noticed or did, in words a person (and the model) can use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// Stable machine-readable kind: `placeholders`, `total_row`, `footnote`, …
    pub kind: String,
    /// The column it is about, by name, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<String>,
    pub text: String,
    /// True when `text` quotes cell values. Privacy mode `strict` keeps such
    /// notes away from the LLM.
    #[serde(default)]
    pub quotes_values: bool,
}

impl Note {
    pub fn table(kind: &str, text: impl Into<String>, quotes_values: bool) -> Note {
        Note { kind: kind.into(), column: None, text: text.into(), quotes_values }
    }
    pub fn column(kind: &str, column: &str, text: impl Into<String>, quotes_values: bool) -> Note {
        Note { kind: kind.into(), column: Some(column.into()), text: text.into(), quotes_values }
    }
}

/// Why a row of the source was kept out of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExcludeReason {
    TotalRow,
    Footnote,
    RepeatedHeader,
    ShortRow,
    LongRow,
}

impl ExcludeReason {
    /// The kind of the note that reports rows kept out for this reason.
    pub fn note_kind(self) -> &'static str {
        match self {
            ExcludeReason::TotalRow => "total_row",
            ExcludeReason::Footnote => "footnote",
            ExcludeReason::RepeatedHeader => "repeated_header",
            ExcludeReason::ShortRow | ExcludeReason::LongRow => "ragged_row",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ExcludeReason::TotalRow => "a total row",
            ExcludeReason::Footnote => "a footnote",
            ExcludeReason::RepeatedHeader => "a repeated header",
            ExcludeReason::ShortRow => "shorter than the header",
            ExcludeReason::LongRow => "longer than the header",
        }
    }
}

/// A source row kept out of the data, with its cells as written: nothing is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedRow {
    /// 1-based line (text) or row (spreadsheet) number in the source.
    pub row: u64,
    pub reason: ExcludeReason,
    pub cells: Vec<String>,
}

/// Everything about a table except its rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Suggested table name (the catalog makes it unique).
    pub name: String,
    /// The source file as given.
    pub source: String,
    pub sheet: Option<String>,
    /// `csv`, `xlsx`, `xls`, `ods`, `parquet`, `json`, `ndjson`.
    pub format: String,
    pub columns: Vec<ColumnMeta>,
    pub notes: Vec<Note>,
    pub excluded: Vec<ExcludedRow>,
}

impl TableMeta {
    pub fn schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|c| Field::new(&c.name, c.dtype.arrow(), true)).collect::<Vec<_>>())
    }
}
