//! Spreadsheets as people lay them out (issue: several tables on a sheet,
//! headerless files, cross-tabs, periods as columns, formulas, units):
//! exact tables from the generator's planted truth, every source cell
//! accounted for, and the layout a person chooses applied again on reload.

use std::path::Path;

use crate::accounting::assert_every_cell_accounted;
use crate::common::{load_all, Loaded};
use arrow::array::AsArray;
use arrow::datatypes::{Float64Type, Int64Type};
use quarry_ingest::catalog::Catalog;
use quarry_ingest::{prepare_with, ColumnType, HeaderChoice, IngestOptions, LayoutChoice, Quiet};
use quarry_testdata::layouts::{self, TableTruth};

fn by_name<'a>(tables: &'a [Loaded], name: &str) -> &'a Loaded {
    tables
        .iter()
        .find(|t| t.meta.name == name)
        .unwrap_or_else(|| panic!("no table {name} in {:?}", tables.iter().map(|t| &t.meta.name).collect::<Vec<_>>()))
}

fn check_truth(tables: &[Loaded], truth: &[TableTruth]) {
    for want in truth {
        let t = by_name(tables, &want.name);
        assert_eq!(t.rows(), want.rows, "{} rows", want.name);
        for (col, sum) in &want.sums {
            assert_eq!(t.meta.columns[t.col(col)].dtype, ColumnType::Integer, "{}.{col}", want.name);
            assert_eq!(t.sum_i64(col), *sum, "{}.{col}", want.name);
        }
    }
}

fn note<'a>(t: &'a Loaded, kind: &str) -> &'a str {
    t.meta.notes.iter().find(|n| n.kind == kind).map(|n| n.text.as_str()).unwrap_or_else(|| {
        panic!("{}: no {kind} note in {:#?}", t.meta.name, t.meta.notes.iter().map(|n| &n.text).collect::<Vec<_>>())
    })
}

#[test]
fn two_tables_stacked_on_one_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.xlsx");
    let truth = layouts::write_stacked_tables(&p).unwrap();
    let tables = load_all(&p);
    assert_eq!(tables.len(), 2);
    check_truth(&tables, &truth);
    let tests = by_name(&tables, "report_tests_by_state");
    assert_eq!(tests.names(), ["state", "tested", "positive"]);
    assert!(note(tests, "position").contains("cells A1:C5") && note(tests, "position").contains("table 1 of 2"));
    assert!(note(tests, "title").contains("Tests by state"));
    let stock = by_name(&tables, "report_stock_by_lga");
    assert_eq!(stock.names(), ["lga", "state", "rdt_kits_stock"]);
    assert!(note(stock, "position").contains("A8:C15"), "{}", note(stock, "position"));
    assert_eq!(stock.meta.excluded.len(), 1, "the footnote is kept out of table 2");
    assert_eq!(stock.meta.part.as_deref(), Some("stock_by_lga"));
    assert_every_cell_accounted(&p, &tables);
}

#[test]
fn two_tables_stacked_in_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.csv");
    let truth = layouts::write_stacked_csv(&p).unwrap();
    let tables = load_all(&p);
    assert_eq!(tables.len(), 2);
    check_truth(&tables, &truth);
    let stock = by_name(&tables, "report_stock_by_lga");
    assert_eq!(stock.meta.columns[stock.col("share_need_pct")].dtype, ColumnType::Float, "decimal commas in a ; file");
    assert!(stock.has_note("delimiter") && stock.has_note("position"));
    assert_every_cell_accounted(&p, &tables);
    let one =
        prepare_with(&p, &IngestOptions::default(), &[LayoutChoice { one_table: true, ..Default::default() }], &Quiet);
    assert_eq!(one.unwrap().tables.len(), 1, "the person says it is one table");
}

#[test]
fn blocks_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("blocks.xlsx");
    let truth = layouts::write_side_by_side(&p).unwrap();
    let tables = load_all(&p);
    assert_eq!(tables.len(), 2);
    check_truth(&tables, &truth);
    assert!(note(by_name(&tables, "blocks_stock_by_lga"), "position").contains("cells D1:E5"));
    assert_every_cell_accounted(&p, &tables);
}

#[test]
fn crosstabs_keep_totals_out_and_offer_long_forms() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crosstabs.xlsx");
    let truth = layouts::write_crosstabs(&p).unwrap();
    let tables = load_all(&p);
    check_truth(&tables, &truth);
    let monthly = by_name(&tables, "crosstabs_monthly");
    assert_eq!(monthly.names(), ["state", "jan_2024", "feb_2024", "mar_2024"], "the Total column is out");
    assert!(note(monthly, "total_column").contains("row total of columns 'Jan 2024' … 'Mar 2024'"));
    assert!(monthly.has_note("total_row"));
    assert!(note(monthly, "periods").contains("crosstabs_monthly_long"));
    let long = by_name(&tables, "crosstabs_monthly_long");
    assert_eq!(long.names(), ["state", "period", "period_start", "value"]);
    assert_eq!(
        long.strings("period")[..3],
        [Some("Jan 2024".into()), Some("Feb 2024".into()), Some("Mar 2024".into())]
    );
    let starts = long.batches[0].column(long.col("period_start")).as_primitive::<arrow::datatypes::Date32Type>();
    assert_eq!(starts.value(1), 19754, "2024-02-01");
    assert!(long.meta.part.as_deref().is_some_and(|p| p.ends_with("long")));
    let quarterly = by_name(&tables, "crosstabs_quarterly");
    assert_eq!(quarterly.meta.columns.len(), 5);
    let ind = by_name(&tables, "crosstabs_indicators_long");
    assert_eq!(ind.names(), ["indicator", "period", "period_start", "value"]);
    assert_eq!(ind.strings("period")[..3], [Some("2022".into()), Some("2023".into()), Some("2024".into())]);
    assert_every_cell_accounted(&p, &tables);
}

#[test]
fn formulas_without_results_are_computed_or_said() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("formulas.xlsx");
    let (rows, tpr) = layouts::write_formulas_without_results(&p).unwrap();
    let tables = load_all(&p);
    let t = by_name(&tables, "formulas_tpr");
    assert_eq!(t.rows(), rows);
    assert_eq!(t.meta.columns[t.col("tpr")].dtype, ColumnType::Float, "computed: {:?}", t.meta.notes);
    assert!((t.mean_f64("tpr") * rows as f64 - tpr).abs() < 1e-9);
    let notes: Vec<_> = t.meta.notes.iter().filter(|n| n.kind == "formulas").collect();
    let of = |c: &str| notes.iter().find(|n| n.column.as_deref() == Some(c)).map(|n| n.text.as_str()).unwrap_or("");
    assert!(of("tpr").contains(&format!("{rows} values computed by Quarry")), "{notes:?}");
    // Another sheet's lookup is not computed: the formula text stays, said.
    assert_eq!(t.nulls("zone"), 0, "never an all-null column");
    assert_eq!(t.strings("zone")[0].as_deref(), Some("=VLOOKUP(A2,Zones!A:B,2,FALSE)"));
    assert!(
        of("zone").contains(&format!("{rows} cells hold formulas")) && of("zone").contains("LibreOffice"),
        "{notes:?}"
    );
    assert_every_cell_accounted(&p, &tables);
}

#[test]
fn percent_and_currency_become_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("units.csv");
    let (tpr, cents, budget) = layouts::write_units_csv(&p).unwrap();
    let tables = load_all(&p);
    let t = &tables[0];
    assert_eq!(t.meta.columns[t.col("tpr")].dtype, ColumnType::Integer);
    assert_eq!(t.sum_i64("tpr"), tpr);
    let cost: f64 = t
        .batches
        .iter()
        .flat_map(|b| b.column(t.col("cost")).as_primitive::<Float64Type>().iter().flatten().collect::<Vec<_>>())
        .sum();
    assert!((cost * 100.0 - cents as f64).abs() < 0.5, "{cost} vs {cents} cents");
    assert_eq!(t.sum_i64("budget"), budget);
    assert_eq!(t.meta.columns[t.col("budget")].label, "Budget [₦]");
    let units: Vec<(&str, &str)> = t
        .meta
        .notes
        .iter()
        .filter(|n| n.kind == "units")
        .map(|n| (n.column.as_deref().unwrap_or(""), n.text.as_str()))
        .collect();
    assert!(units.iter().any(|(c, t)| *c == "tpr" && t.contains("45% is stored as 45")), "{units:?}");
    assert!(units.iter().any(|(c, t)| *c == "paid" && t.contains("several units")), "{units:?}");
    assert_eq!(t.meta.columns[t.col("paid")].dtype, ColumnType::Text, "two currencies stay text");
    let _ = t.batches[0].column(t.col("tpr")).as_primitive::<Int64Type>();
    assert_every_cell_accounted(&p, &tables);
}

#[test]
fn headerless_text_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    for (file, delim) in [("counts.csv", ','), ("counts.tsv", '\t')] {
        let p = dir.path().join(file);
        let (rows, tested) = layouts::write_headerless(&p, delim).unwrap();
        let tables = load_all(&p);
        let t = &tables[0];
        assert_eq!(t.rows(), rows, "{file}: no data row became the header");
        assert_eq!(t.names(), ["column_1", "column_2", "column_3", "column_4"]);
        assert_eq!(t.sum_i64("column_3"), tested);
        assert!(note(t, "header").contains("no header row"));
        assert_eq!(t.meta.layout.as_ref().unwrap().header_row, None);
        assert_every_cell_accounted(&p, &tables);
    }
}

fn prepared_names(p: &Path, choice: LayoutChoice) -> Vec<(String, Option<u64>)> {
    let pf = prepare_with(p, &IngestOptions::default(), &[choice], &Quiet).unwrap();
    pf.tables.iter().map(|t| (t.meta.name.clone(), t.meta.layout.as_ref().and_then(|l| l.header_row))).collect()
}

#[test]
fn chosen_layouts_override_the_guess() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.xlsx");
    layouts::write_stacked_tables(&p).unwrap();
    let one = prepared_names(&p, LayoutChoice { one_table: true, ..Default::default() });
    assert_eq!(one, [("report".to_string(), Some(2))]);
    let ranged = prepared_names(&p, LayoutChoice { range: Some("A9:C13".parse().unwrap()), ..Default::default() });
    assert_eq!(ranged, [("report".to_string(), Some(9))]);
    // A header row inside the second block applies there only.
    let hdr = prepared_names(&p, LayoutChoice { header: HeaderChoice::Row(10), ..Default::default() });
    assert_eq!(hdr[1], ("report_stock_by_lga".to_string(), Some(10)));
    let split = prepared_names(&p, LayoutChoice { split_at: vec![4], ..Default::default() });
    assert_eq!(split.len(), 3, "{split:?}");
    let far = prepare_with(
        &p,
        &IngestOptions::default(),
        &[LayoutChoice { header: HeaderChoice::Row(99), ..Default::default() }],
        &Quiet,
    )
    .unwrap();
    assert!(far.tables[0]
        .meta
        .notes
        .iter()
        .any(|n| n.text.contains("row 99 was chosen as the header, but it is in none")));
    let nope = LayoutChoice { sheet: Some("Nope".into()), one_table: true, ..Default::default() };
    let e = prepare_with(&p, &IngestOptions::default(), &[nope], &Quiet).err().expect("no such sheet");
    assert_eq!(e.kind, quarry_ingest::ErrorKind::Layout);
    assert!(e.problem.contains("no sheet named 'Nope'") && e.hint.contains("Report"), "{e}");
    let csv = dir.path().join("counts.csv");
    layouts::write_headerless(&csv, ',').unwrap();
    let h1 = prepare_with(
        &csv,
        &IngestOptions::default(),
        &[LayoutChoice { header: HeaderChoice::Row(1), ..Default::default() }],
        &Quiet,
    )
    .unwrap();
    assert_eq!(h1.tables[0].meta.columns[0].label, "Kano");
    let far = LayoutChoice { header: HeaderChoice::Row(77), ..Default::default() };
    let h77 = prepare_with(&csv, &IngestOptions::default(), &[far], &Quiet).unwrap();
    assert!(h77.tables[0].meta.notes.iter().any(|n| n.text.contains("row 77 was chosen as the header")));
    assert_eq!(h77.tables[0].meta.layout.as_ref().unwrap().header_row, None, "found as usual: none");
}

#[test]
fn a_chosen_layout_is_stored_and_applied_to_the_next_version() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("report.xlsx");
    layouts::write_stacked_tables(&p).unwrap();
    let mut cat = Catalog::open(&dir.path().join("data")).unwrap();
    let first = cat.load(&p, &IngestOptions::default(), &Quiet).unwrap();
    assert_eq!(first.tables.len(), 2);
    let one = LayoutChoice { one_table: true, ..Default::default() };
    let r = cat.load_with(&p, &IngestOptions::default(), Some(&one), &Quiet).unwrap();
    assert_eq!(r.tables.len(), 1);
    let names: Vec<String> = cat.tables().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["report"], "the two block tables are retired");
    assert!(cat.entry("report_tests_by_state", None).is_ok(), "retired, not lost");
    // Next month's file: the stored choice applies again.
    layouts::write_side_by_side(&p).unwrap();
    let r = cat.load(&p, &IngestOptions::default(), &Quiet).unwrap();
    assert_eq!(r.tables.len(), 1, "{:?}", r.tables.iter().map(|l| &l.table.name).collect::<Vec<_>>());
    assert!(r.tables[0].table.notes.iter().any(|n| n.text.contains("layout chosen when loading: one table")));
    assert_eq!(cat.layouts(&std::fs::canonicalize(&p).unwrap().display().to_string()).unwrap(), [one]);
    // `auto` clears it: the blocks come back, under their old names.
    let auto = LayoutChoice::default();
    let r = cat.load_with(&p, &IngestOptions::default(), Some(&auto), &Quiet).unwrap();
    assert_eq!(r.tables.len(), 2);
}

#[test]
fn every_shared_fixture_cell_is_accounted_for() {
    let Some(dir) = quarry_testdata::shared_dir("fixtures") else { return };
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if !p.is_file() || matches!(ext, "md" | "json" | "parquet") {
            continue;
        }
        let Ok(pf) = quarry_ingest::prepare(&p, &IngestOptions::default(), &Quiet) else { continue };
        drop(pf);
        assert_every_cell_accounted(&p, &load_all(&p));
        seen += 1;
    }
    assert!(seen >= 10, "{seen} fixtures checked");
}

#[test]
fn every_generated_file_cell_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    for p in quarry_testdata::write_demo(dir.path()).unwrap() {
        assert_every_cell_accounted(&p, &load_all(&p));
    }
}

#[test]
fn a_catalog_from_before_table_blocks_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = dir.path().join("report.xlsx");
    layouts::write_stacked_tables(&p).unwrap();
    // The schema as Quarry wrote it before: one table per (source, sheet).
    std::fs::create_dir_all(&data).unwrap();
    let old = rusqlite::Connection::open(data.join("catalog.sqlite")).unwrap();
    old.execute_batch(
        "CREATE TABLE tables (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
             sheet TEXT NOT NULL DEFAULT '', format TEXT NOT NULL, UNIQUE (source, sheet));
         CREATE TABLE versions (table_id INTEGER NOT NULL REFERENCES tables(id), version INTEGER NOT NULL,
             content_hash TEXT NOT NULL, rows INTEGER NOT NULL, parquet TEXT NOT NULL, columns_json TEXT NOT NULL,
             notes_json TEXT NOT NULL, excluded_json TEXT NOT NULL, stats_json TEXT NOT NULL,
             loaded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')), PRIMARY KEY (table_id, version));
         INSERT INTO tables (name, source, sheet, format) VALUES ('old', '/gone.csv', '', 'csv');
         INSERT INTO versions VALUES (1, 1, 'h', 0, 'tables/old/v1.parquet', '[]', '[]', '[]',
             '{\"rows\":0,\"columns\":[],\"notes\":[]}', '2026-01-01T00:00:00Z');",
    )
    .unwrap();
    drop(old);
    let mut cat = Catalog::open(&data).unwrap();
    let old = cat.entry("old", None).expect("the old table reads back");
    assert_eq!((old.part, old.layout), (None, None));
    let r = cat.load(&p, &IngestOptions::default(), &Quiet).unwrap();
    assert_eq!(r.tables.len(), 2, "two tables of one sheet fit the migrated catalog");
    assert_eq!(cat.tables().unwrap().len(), 3);
}
