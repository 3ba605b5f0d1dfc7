//! What ingest knows about a table: columns, notes, rows kept out.

use arrow::datatypes::{Field, Schema};
use serde::{Deserialize, Serialize};

pub use quarry_types::ColumnType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Unique, SQL-friendly name (`rdt_positive_lt5yrs`).
    pub name: String,
    /// The header as written in the file, for display.
    pub label: String,
    #[serde(rename = "type")]
    pub dtype: ColumnType,
}

/// What a [`Note`] is about: one stable name per kind (serialised as
/// written here), and whether a note of the kind quotes cell values — which
/// decides, with the privacy policy, whether the model may read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    Encoding,
    Delimiter,
    Format,
    Position,
    Header,
    DuplicateHeader,
    BlankColumns,
    BlankRows,
    TotalRow,
    Footnote,
    RepeatedHeader,
    RaggedRow,
    SheetSkipped,
    Hierarchy,
    Converted,
    Placeholders,
    CellErrors,
    NumbersAsText,
    NumberFormat,
    DateFormat,
    Trimmed,
    OutOfRange,
    MixedTypes,
    SharedAffix,
    Categorical,
    SpellingVariants,
    /// The title above a table block (quotes the sheet's text).
    Title,
    /// Formulas saved without results, or all stored as 0.
    Formulas,
    /// A total column kept out of the data (or one that does not add up).
    TotalColumn,
    /// Column headers that are periods; the long form offered beside.
    Periods,
    /// This table is the long form of another.
    LongForm,
    /// Percent signs and currencies read out of numbers.
    Units,
    /// A database table's primary and foreign keys, from its catalog.
    Keys,
    /// A kind this version does not know (written by a newer Quarry):
    /// treated as quoting values.
    #[serde(other)]
    Other,
}

impl NoteKind {
    pub const ALL: [NoteKind; 34] = [
        NoteKind::Encoding,
        NoteKind::Delimiter,
        NoteKind::Format,
        NoteKind::Position,
        NoteKind::Header,
        NoteKind::DuplicateHeader,
        NoteKind::BlankColumns,
        NoteKind::BlankRows,
        NoteKind::TotalRow,
        NoteKind::Footnote,
        NoteKind::RepeatedHeader,
        NoteKind::RaggedRow,
        NoteKind::SheetSkipped,
        NoteKind::Hierarchy,
        NoteKind::Converted,
        NoteKind::Placeholders,
        NoteKind::CellErrors,
        NoteKind::NumbersAsText,
        NoteKind::NumberFormat,
        NoteKind::DateFormat,
        NoteKind::Trimmed,
        NoteKind::OutOfRange,
        NoteKind::MixedTypes,
        NoteKind::SharedAffix,
        NoteKind::Categorical,
        NoteKind::SpellingVariants,
        NoteKind::Title,
        NoteKind::Formulas,
        NoteKind::TotalColumn,
        NoteKind::Periods,
        NoteKind::LongForm,
        NoteKind::Units,
        NoteKind::Keys,
        NoteKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Encoding => "encoding",
            NoteKind::Delimiter => "delimiter",
            NoteKind::Format => "format",
            NoteKind::Position => "position",
            NoteKind::Header => "header",
            NoteKind::DuplicateHeader => "duplicate_header",
            NoteKind::BlankColumns => "blank_columns",
            NoteKind::BlankRows => "blank_rows",
            NoteKind::TotalRow => "total_row",
            NoteKind::Footnote => "footnote",
            NoteKind::RepeatedHeader => "repeated_header",
            NoteKind::RaggedRow => "ragged_row",
            NoteKind::SheetSkipped => "sheet_skipped",
            NoteKind::Hierarchy => "hierarchy",
            NoteKind::Converted => "converted",
            NoteKind::Placeholders => "placeholders",
            NoteKind::CellErrors => "cell_errors",
            NoteKind::NumbersAsText => "numbers_as_text",
            NoteKind::NumberFormat => "number_format",
            NoteKind::DateFormat => "date_format",
            NoteKind::Trimmed => "trimmed",
            NoteKind::OutOfRange => "out_of_range",
            NoteKind::MixedTypes => "mixed_types",
            NoteKind::SharedAffix => "shared_affix",
            NoteKind::Categorical => "categorical",
            NoteKind::SpellingVariants => "spelling_variants",
            NoteKind::Title => "title",
            NoteKind::Formulas => "formulas",
            NoteKind::TotalColumn => "total_column",
            NoteKind::Periods => "periods",
            NoteKind::LongForm => "long_form",
            NoteKind::Units => "units",
            NoteKind::Keys => "keys",
            NoteKind::Other => "other",
        }
    }

    /// True when notes of this kind quote cell values (examples, categories,
    /// spellings): privacy mode `strict` keeps them from the model.
    pub fn quotes_values(self) -> bool {
        matches!(
            self,
            NoteKind::Categorical
                | NoteKind::MixedTypes
                | NoteKind::OutOfRange
                | NoteKind::SharedAffix
                | NoteKind::SpellingVariants
                | NoteKind::Title
                | NoteKind::Other
        )
    }
}

impl PartialEq<&str> for NoteKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for NoteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something ingest noticed or did, in words a person (and the model) can use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub kind: NoteKind,
    /// The column it is about, by name, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<String>,
    pub text: String,
    /// True when `text` quotes cell values (its kind's
    /// [`NoteKind::quotes_values`]; stored for readers of the metadata).
    /// Privacy mode `strict` keeps such notes away from the LLM.
    #[serde(default)]
    pub quotes_values: bool,
    /// Source cells this note accounts for that are in no table column
    /// and no excluded row (placeholders read as null, a total column kept
    /// out, a skipped sheet): with the data, the header and the excluded
    /// rows, every source cell is counted once.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cells: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Note {
    pub fn table(kind: NoteKind, text: impl Into<String>) -> Note {
        Note { kind, column: None, text: text.into(), quotes_values: kind.quotes_values(), cells: 0 }
    }
    pub fn column(kind: NoteKind, column: &str, text: impl Into<String>) -> Note {
        Note { kind, column: Some(column.into()), text: text.into(), quotes_values: kind.quotes_values(), cells: 0 }
    }
    /// The same note, accounting for `n` source cells.
    pub fn counting(mut self, n: u64) -> Note {
        self.cells = n;
        self
    }
}

/// Where in its source a table came from, and how its header was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceLayout {
    /// The block's cell range on the sheet (`B3:F8`), or the lines of a
    /// text file (`lines 1-20`).
    pub range: String,
    /// 1-based sheet row (or file line) of the header; none without one.
    pub header_row: Option<u64>,
    /// How the header was decided: `auto`, `none` or the row the user chose.
    pub header: HeaderChoice,
    /// Non-blank source cells above the data: titles and header rows.
    pub header_cells: u64,
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
    pub fn note_kind(self) -> NoteKind {
        match self {
            ExcludeReason::TotalRow => NoteKind::TotalRow,
            ExcludeReason::Footnote => NoteKind::Footnote,
            ExcludeReason::RepeatedHeader => NoteKind::RepeatedHeader,
            ExcludeReason::ShortRow | ExcludeReason::LongRow => NoteKind::RaggedRow,
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
    /// Which table of its sheet this is, when a sheet holds several (the
    /// block's title words, `table_2`, or `…_long` for a long form): with
    /// the source and sheet, the table's identity across versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<SourceLayout>,
}

impl TableMeta {
    pub fn schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|c| Field::new(&c.name, c.dtype.arrow(), true)).collect::<Vec<_>>())
    }
}

/// How the header of a table is decided: from the evidence, or as the user said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderChoice {
    /// Decide from the evidence (types of the first row against the rest).
    #[default]
    Auto,
    /// The file has no header: every row is data, columns are numbered.
    None,
    /// The header is this row (1-based sheet row or file line).
    Row(u64),
}

impl std::fmt::Display for HeaderChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderChoice::Auto => f.write_str("auto"),
            HeaderChoice::None => f.write_str("none"),
            HeaderChoice::Row(n) => write!(f, "{n}"),
        }
    }
}

impl std::str::FromStr for HeaderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(HeaderChoice::Auto),
            "none" | "no" => Ok(HeaderChoice::None),
            n => n.parse::<u64>().ok().filter(|&n| n > 0).map(HeaderChoice::Row).ok_or_else(|| {
                format!("header '{s}': write auto, none, or the header's row number (1 is the first row)")
            }),
        }
    }
}

impl serde::Serialize for HeaderChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HeaderChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match v {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s,
            _ => return Err(serde::de::Error::custom("header: auto, none or a row number")),
        };
        s.parse().map_err(serde::de::Error::custom)
    }
}
