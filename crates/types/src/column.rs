//! Column types as Quarry shows them, one list for ingest (the types a file's
//! columns get) and for results (the types a query's columns have): an
//! unsigned 64-bit integer is a float in both, since it may not fit an i64.

use arrow::datatypes::{DataType, TimeUnit};
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
    pub const ALL: [ColumnType; 6] = [
        ColumnType::Integer,
        ColumnType::Float,
        ColumnType::Boolean,
        ColumnType::Date,
        ColumnType::DateTime,
        ColumnType::Text,
    ];

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

/// A result column's type, where results may hold types no file column has
/// (lists, structs, intervals): `None`, written `"other"`.
pub mod result_type {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ColumnType;

    pub fn serialize<S: Serializer>(t: &Option<ColumnType>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => t.serialize(s),
            None => s.serialize_str("other"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ColumnType>, D::Error> {
        let name = String::deserialize(d)?;
        Ok(ColumnType::ALL.into_iter().find(|t| t.as_str() == name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, UInt64Array};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;
    use crate::{QueryResult, Table};

    /// A result's column has the type ingest would give the same Arrow
    /// column: u64 values beyond i64 are floats, not text.
    #[test]
    fn results_and_files_agree_on_types() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::UInt64, false)]));
        let col: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 7]));
        let batch = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        let t = Table::from_result(&QueryResult { schema, batches: vec![batch], rows: 2, truncated: false });
        assert_eq!(t.columns[0].dtype, Some(ColumnType::Float));
        assert!(t.rows.iter().all(|r| r[0].is_f64()), "{:?}", t.rows);
        assert_eq!(serde_json::to_value(&t.columns[0]).unwrap()["type"], "float");
        let other: crate::Column = serde_json::from_value(serde_json::json!({"name": "l", "type": "other"})).unwrap();
        assert_eq!((other.dtype, other.type_name()), (None, "other"));
    }
}
