//! Parquet input: already typed, so columns are only renamed to SQL-friendly
//! names and cast to Quarry's column types.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::compute::cast;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{ErrorKind, IngestError, Result};
use crate::table::{ColumnMeta, ColumnType, Note, TableMeta};

fn bad(e: impl std::fmt::Display) -> IngestError {
    IngestError::new(
        ErrorKind::Corrupt,
        format!("the Parquet file could not be read ({e})"),
        "check that the file is complete; write it again if it was cut short",
    )
}

pub fn read(path: &Path) -> Result<(TableMeta, Vec<RecordBatch>)> {
    let f = File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(bad)?;
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(crate::build::BATCH_ROWS).build().map_err(bad)?;
    let labels: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let names = crate::names::column_names(&labels);
    let mut notes = Vec::new();
    let types: Vec<ColumnType> = schema
        .fields()
        .iter()
        .map(|f| {
            ColumnType::from_arrow(f.data_type()).unwrap_or_else(|| {
                notes.push(Note::column(
                    "converted",
                    f.name(),
                    format!("'{}' of type {} stored as text", f.name(), f.data_type()),
                    false,
                ));
                ColumnType::Text
            })
        })
        .collect();
    let columns: Vec<ColumnMeta> = names
        .iter()
        .zip(&labels)
        .zip(&types)
        .map(|((n, l), t)| ColumnMeta { name: n.clone(), label: l.clone(), dtype: *t })
        .collect();
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let meta = TableMeta {
        name: crate::names::table_name(&stem, None),
        source: path.display().to_string(),
        sheet: None,
        format: "parquet".into(),
        columns,
        notes,
        excluded: Vec::new(),
    };
    let out_schema = Arc::new(meta.schema());
    let mut batches = Vec::new();
    for b in reader {
        let b = b.map_err(bad)?;
        let cols = b
            .columns()
            .iter()
            .zip(&types)
            .map(|(c, t)| cast(c, &t.arrow()).map_err(bad))
            .collect::<Result<Vec<_>>>()?;
        batches.push(RecordBatch::try_new(out_schema.clone(), cols).map_err(bad)?);
    }
    Ok((meta, batches))
}
