//! The project's own generated files (no ../shared needed): each messy file's
//! facts come from the generator's `Truth`, computed while it was written.

use crate::common::load_all;
use crate::common::load_one;
use quarry_ingest::catalog::{Catalog, Outcome};
use quarry_ingest::{ColumnType, IngestOptions, Quiet};

#[test]
fn clinic_workbook_matches_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clinic.xlsx");
    let truth = quarry_testdata::write_clinic_workbook(&path).expect("write");
    let tables = load_all(&path);
    assert_eq!(tables.len(), 1, "the Notes sheet is prose and must not become a table");
    let t = &tables[0];
    assert_eq!(t.rows(), truth.data_rows);
    assert_eq!(t.meta.columns.len(), truth.columns);
    assert_eq!(t.sum_i64("tested_positive_rdt_ge5yrs"), truth.positive_ge5_sum);
    assert_eq!(t.sum_i64("tested_malaria_rdt_lt5yrs"), truth.tested_lt5_sum);
    let mut states: Vec<String> = t.strings("location_state").into_iter().flatten().collect();
    states.sort();
    states.dedup();
    assert_eq!(states.len(), truth.states, "{states:?}");
    assert_eq!(t.meta.columns[t.col("period_month")].dtype, ColumnType::Date);
    assert!(t.has_note("numbers_as_text") && t.has_note("total_row") && t.has_note("footnote"));
    assert!(t.has_note("spelling_variants"));
    assert!(t.nulls("remarks") >= truth.not_done);
}

#[test]
fn french_csv_matches_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fr.csv");
    let truth = quarry_testdata::write_french_csv(&path).expect("write");
    let t = load_one(&path);
    assert_eq!(t.rows(), truth.rows);
    let mean = t.mean_f64("couverture_pct");
    let expect = truth.coverage_tenths_sum as f64 / 10.0 / truth.rows as f64;
    assert!((mean - expect).abs() < 1e-9, "{mean} vs {expect}");
    assert_eq!(t.strings("region_sanitaire")[0].as_deref(), Some(truth.first_region.as_str()));
    assert_eq!(t.meta.columns[t.col("date_de_distribution")].dtype, ColumnType::Date);
}

#[test]
fn utf16_matches_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rain.txt");
    let n = quarry_testdata::write_utf16_rainfall(&path).expect("write");
    let t = load_one(&path);
    assert_eq!(t.rows(), n);
    assert_eq!(t.meta.columns[t.col("date_")].dtype, ColumnType::Date);
}

#[test]
fn catalog_versions_by_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let file = dir.path().join("stock.csv");
    std::fs::write(&file, "facility,stock\nA,1\nB,2\n").expect("write");
    let mut cat = Catalog::open(&data).expect("catalog");
    let r1 = cat.load(&file, &IngestOptions::default(), &Quiet).expect("load");
    assert_eq!(r1.tables[0].outcome, Outcome::New);
    assert_eq!(r1.tables[0].table.rows, 2);
    assert!(r1.tables[0].table.parquet.exists());
    let r2 = cat.load(&file, &IngestOptions::default(), &Quiet).expect("reload");
    assert_eq!(r2.tables[0].outcome, Outcome::Unchanged);
    assert_eq!(r2.tables[0].table.version, 1);
    std::fs::write(&file, "facility,stock\nA,1\nB,2\nC,3\n").expect("write");
    let r3 = cat.load(&file, &IngestOptions::default(), &Quiet).expect("changed");
    assert_eq!(r3.tables[0].outcome, Outcome::NewVersion);
    assert_eq!((r3.tables[0].table.version, r3.tables[0].table.rows), (2, 3));
    assert_ne!(r3.tables[0].table.content_hash, r1.tables[0].table.content_hash);
    assert_eq!(cat.versions("stock").expect("versions"), vec![1, 2]);
    assert_eq!(cat.entry("stock", Some(1)).expect("v1").rows, 2);
    // A second file whose name would clash gets its own table name.
    let other = dir.path().join("sub");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("stock.csv"), "x\n1\n").expect("write");
    let r4 = cat.load(&other.join("stock.csv"), &IngestOptions::default(), &Quiet).expect("load");
    assert_eq!(r4.tables[0].table.name, "stock_2");
    // A reopened catalog sees the same tables.
    drop(cat);
    let cat = Catalog::open(&data).expect("reopen");
    assert_eq!(cat.tables().expect("tables").len(), 2);
}

#[test]
fn text_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, usize, &[&str])] = &[
        // title line above the header, pipe-separated
        (
            "pipe.txt",
            "Report for March\n\nname|qty|when\nx|1|2024-03-01\ny|2|2024-03-02\n",
            2,
            &["name", "qty", "when_"],
        ),
        // no header at all
        ("nohead.csv", "1,2.5\n3,4.5\n", 2, &["column_1", "column_2"]),
        // JSON array and NDJSON
        ("a.json", r#"[{"a":1,"b":"x"},{"a":2,"b":null}]"#, 2, &["a", "b"]),
        ("b.ndjson", "{\"a\":1}\n{\"a\":2,\"c\":true}\n", 2, &["a", "c"]),
        // wrong extension: a CSV named .xlsx still loads (with a note)
        ("csv_named.xlsx", "a,b\n1,2\n", 1, &["a", "b"]),
    ];
    for (name, body, rows, cols) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write");
        let t = load_one(&p);
        assert_eq!(t.rows(), *rows, "{name}");
        assert_eq!(t.names(), cols.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{name}");
    }
    let t = load_one(&dir.path().join("csv_named.xlsx"));
    assert!(t.has_note("format"));
}

/// Regression: a column numeric for 1500 rows and then `X1500` must not be
/// typed from a sample (DataFusion's 1000-row inference breaks on it).
#[test]
fn regression_type_from_whole_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("late.csv");
    let mut s = String::from("id,v\n");
    for i in 0..1500 {
        s.push_str(&format!("{i},{i}\n"));
    }
    s.push_str("1500,X1500\n");
    std::fs::write(&p, s).expect("write");
    let t = load_one(&p);
    assert_eq!(t.meta.columns[1].dtype, ColumnType::Text);
    assert!(t.has_note("mixed_types"));
    assert_eq!(t.rows(), 1501);
}

/// Regression: a sheet whose data reaches past the columns seen in its first
/// 50 rows must keep those cells (as extra columns), not drop them.
#[test]
fn regression_sheet_data_wider_than_header_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("wide_late.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "name").expect("w");
    ws.write_string(0, 1, "qty").expect("w");
    for r in 1..80u32 {
        ws.write_string(r, 0, format!("item {r}")).expect("w");
        ws.write_number(r, 1, r as f64).expect("w");
    }
    ws.write_string(79, 2, "late note").expect("w");
    wb.save(&p).expect("save");
    let t = load_one(&p);
    assert_eq!(t.names(), vec!["name", "qty", "column_3"]);
    assert_eq!(t.strings("column_3").into_iter().flatten().collect::<Vec<_>>(), vec!["late note"]);
}

#[test]
fn one_day_month_order_per_file() {
    use arrow::array::AsArray;
    use arrow::datatypes::Date32Type;
    let dir = tempfile::tempdir().unwrap();
    let day = |t: &crate::common::Loaded, col: &str| -> Vec<i32> {
        let i = t.col(col);
        t.batches.iter().flat_map(|b| b.column(i).as_primitive::<Date32Type>().values().to_vec()).collect()
    };
    let days = |y, m, d| {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap() - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32
    };
    // The first column fits both orders; the second is day-first: both day-first.
    let p = dir.path().join("budget_dmy.csv");
    std::fs::write(&p, "item,budget_year_start,budget_year_end\nA,01/04/2024,31/03/2025\nB,01/07/2024,30/06/2025\n")
        .unwrap();
    let t = crate::common::load_one(&p);
    assert_eq!(day(&t, "budget_year_start"), [days(2024, 4, 1), days(2024, 7, 1)]);
    // The second is month-first: the first is read month-first too, and says why.
    let p = dir.path().join("budget_mdy.csv");
    std::fs::write(&p, "item,budget_year_start,budget_year_end\nA,04/01/2024,03/31/2025\nB,07/01/2024,06/30/2025\n")
        .unwrap();
    let t = crate::common::load_one(&p);
    assert_eq!(day(&t, "budget_year_start"), [days(2024, 4, 1), days(2024, 7, 1)], "a year-long period, not 629 days");
    assert_eq!(day(&t, "budget_year_end"), [days(2025, 3, 31), days(2025, 6, 30)]);
    let n = t
        .meta
        .notes
        .iter()
        .find(|n| n.column.as_deref() == Some("budget_year_start") && n.kind == "date_format")
        .unwrap();
    assert!(n.text.contains("other date columns are written month/day"), "{}", n.text);
    // Opposite orders that the values force are kept, and said.
    let p = dir.path().join("mixed.csv");
    std::fs::write(&p, "a,b\n31/01/2024,01/31/2024\n").unwrap();
    let t = crate::common::load_one(&p);
    assert!(t.meta.notes.iter().any(|n| n.text.contains("writes dates in both orders")));
}
