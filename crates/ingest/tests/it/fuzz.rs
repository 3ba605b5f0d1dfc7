//! No panic on any input: random bytes, random delimited text and random
//! grids go through the real entry points. Failures must be errors.

use proptest::prelude::*;
use quarry_ingest::shape::{find_layout, Shaper};
use quarry_ingest::{cell::Cell, prepare, IngestOptions, Quiet};

fn run(bytes: &[u8], ext: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join(format!("f.{ext}"));
    std::fs::write(&p, bytes).expect("write");
    if let Ok(pf) = prepare(&p, &IngestOptions::default(), &Quiet) {
        for t in &pf.tables {
            let _ = t.batches(&Quiet, &mut |_| Ok(()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        run(&bytes, "csv");
    }

    #[test]
    fn random_text_tables(
        cells in proptest::collection::vec(
            proptest::string::string_regex("[a-zA-Z0-9 ,.;\"\\-/\t|NA]{0,12}").expect("regex"), 0..120),
        width in 1usize..8,
    ) {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            s.push(if (i + 1) % width == 0 { '\n' } else { ',' });
        }
        run(s.as_bytes(), "csv");
    }

    #[test]
    fn random_json(s in "[\\[\\]{}\":,0-9a-z ]{0,200}") {
        run(s.as_bytes(), "json");
    }

    #[test]
    fn ole_prefixed_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut b = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        b.extend(bytes);
        run(&b, "xls");
    }

    #[test]
    fn random_ndjson(lines in proptest::collection::vec("[{}\\[\\]\":,0-9a-z ]{0,40}", 0..20)) {
        run(lines.join("\n").as_bytes(), "ndjson");
    }

    #[test]
    fn zip_prefixed_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut b = b"PK\x03\x04".to_vec();
        b.extend(bytes);
        run(&b, "xlsx");
    }

    /// A valid Parquet file (dates at the edges of i32, ints, text) with
    /// bytes flipped anywhere, footer included: every reader path errors,
    /// never panics.
    #[test]
    fn mutated_parquet(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                       days in proptest::collection::vec(any::<i32>(), 1..20)) {
        let mut b = parquet_bytes(&days);
        for (i, v) in flips {
            let k = i.index(b.len());
            b[k] = v;
        }
        run(&b, "parquet");
    }

    #[test]
    fn random_grids(rows in proptest::collection::vec(
        proptest::collection::vec(prop_oneof![
            Just(Cell::Empty),
            any::<i64>().prop_map(Cell::Int),
            any::<f64>().prop_map(Cell::Float),
            Just(Cell::Text("TOTAL")),
            Just(Cell::Text("Kano")),
            Just(Cell::Text("-")),
            Just(Cell::Text("1,204")),
            Just(Cell::Text("31/12/2024")),
        ], 0..6), 0..30)) {
        let rows: Vec<&[Cell]> = rows.iter().map(|r| r.as_slice()).collect();
        let layout = find_layout(&rows);
        let mut shaper = Shaper::new(&layout, false);
        for (i, r) in rows.iter().enumerate().skip(layout.data_start) {
            shaper.push(i as u64, i as u64 + 1, *r);
        }
        shaper.finish();
        for c in &shaper.columns {
            let _ = c.plan(false);
        }
    }
}

fn parquet_bytes(days: &[i32]) -> Vec<u8> {
    use arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;
    let n = days.len();
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("day", Arc::new(Date32Array::from(days.to_vec()))),
        (
            "at",
            Arc::new(TimestampMillisecondArray::from(
                days.iter().map(|d| (*d as i64).wrapping_mul(86_400_000_000)).collect::<Vec<_>>(),
            )),
        ),
        ("n", Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()))),
        ("s", Arc::new(StringArray::from((0..n).map(|i| format!("v{}", i % 3)).collect::<Vec<_>>()))),
    ];
    let batch = arrow::record_batch::RecordBatch::try_from_iter(cols).expect("batch");
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    out
}

/// Regression: a Parquet date32 of i32::MAX/MIN panicked in the profile.
#[test]
fn regression_parquet_extreme_dates_profile_without_panic() {
    run(&parquet_bytes(&[i32::MAX, i32::MIN, 0]), "parquet");
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("d.parquet");
    std::fs::write(&p, parquet_bytes(&[i32::MAX, i32::MIN, 0])).expect("write");
    let pf = prepare(&p, &IngestOptions::default(), &Quiet).expect("prepares");
    let stats = quarry_ingest::catalog::profile(&pf.tables[0], &Quiet).expect("profiles");
    assert_eq!(stats.columns[0].nulls, 2);
    assert!(pf.tables[0].meta.notes.iter().any(|n| n.kind == "out_of_range"));
}

/// The zip bomb check looks only at the zip directory: a tiny file that
/// claims a huge entry is refused before anything inflates.
#[test]
fn zip_bomb_refused_before_inflating() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("bomb.xlsx");
    {
        let f = std::fs::File::create(&p).expect("create");
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("xl/workbook.xml", opts).expect("start");
        z.write_all(b"<workbook/>").expect("write");
        z.start_file("xl/worksheets/sheet1.xml", opts).expect("start");
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..8 {
            z.write_all(&zeros).expect("write");
        }
        z.finish().expect("finish");
    }
    let opts = IngestOptions { max_inflated_bytes: 4 << 20, ..IngestOptions::default() };
    let err = prepare(&p, &opts, &Quiet).err().expect("must be refused");
    assert_eq!(err.kind, quarry_ingest::ErrorKind::TooLarge, "{err}");
}
