//! Helpers shared by the ingest integration tests.

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use quarry_ingest::{prepare, IngestOptions, Quiet, TableMeta};

pub struct Loaded {
    pub meta: TableMeta,
    pub batches: Vec<RecordBatch>,
}

impl Loaded {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
    pub fn col(&self, name: &str) -> usize {
        self.meta
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.names()))
    }
    pub fn names(&self) -> Vec<String> {
        self.meta.columns.iter().map(|c| c.name.clone()).collect()
    }
    pub fn labels(&self) -> Vec<String> {
        self.meta.columns.iter().map(|c| c.label.clone()).collect()
    }
    pub fn sum_i64(&self, name: &str) -> i64 {
        let i = self.col(name);
        self.batches.iter().map(|b| b.column(i).as_primitive::<Int64Type>().iter().flatten().sum::<i64>()).sum()
    }
    pub fn mean_f64(&self, name: &str) -> f64 {
        let i = self.col(name);
        let vals: Vec<f64> = self
            .batches
            .iter()
            .flat_map(|b| b.column(i).as_primitive::<Float64Type>().iter().flatten().collect::<Vec<_>>())
            .collect();
        vals.iter().sum::<f64>() / vals.len() as f64
    }
    pub fn strings(&self, name: &str) -> Vec<Option<String>> {
        let i = self.col(name);
        self.batches
            .iter()
            .flat_map(|b| b.column(i).as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect::<Vec<_>>())
            .collect()
    }
    pub fn nulls(&self, name: &str) -> usize {
        let i = self.col(name);
        self.batches.iter().map(|b| b.column(i).null_count()).sum()
    }
    pub fn has_note(&self, kind: &str) -> bool {
        self.meta.notes.iter().any(|n| n.kind == kind)
    }
}

/// All tables of a file, fully built.
pub fn load_all(path: &Path) -> Vec<Loaded> {
    let pf = prepare(path, &IngestOptions::default(), &Quiet).unwrap_or_else(|e| panic!("{e}"));
    pf.tables
        .iter()
        .map(|t| {
            let mut batches = Vec::new();
            t.batches(&Quiet, &mut |b| {
                batches.push(b);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
            let mut meta = t.meta.clone();
            meta.notes.extend(pf.notes.iter().cloned());
            Loaded { meta, batches }
        })
        .collect()
}

pub fn load_one(path: &Path) -> Loaded {
    let mut all = load_all(path);
    assert_eq!(all.len(), 1, "expected one table in {}", path.display());
    all.remove(0)
}
