//! Every file in `../shared/fixtures/` loads with the facts its README states.

use crate::common::{load_all, load_one};
use quarry_ingest::{ColumnType, ErrorKind, IngestOptions, Quiet};
use quarry_testdata::shared_dir as shared;

#[test]
fn nmep_xlsx_facility_data() {
    let Some(dir) = shared("fixtures") else { return };
    let tables = load_all(&dir.join("nmep_tpr_2024.xlsx"));
    let t = tables.iter().find(|t| t.meta.sheet.as_deref() == Some("Facility Data")).expect("Facility Data table");
    assert_eq!(t.rows(), 837);
    assert_eq!(t.meta.columns.len(), 15);
    assert!(t.labels().contains(&"Persons tested positive for malaria by RDT / ≥5yrs".to_string()), "{:?}", t.labels());
    let ge5 = "tested_positive_malaria_rdt_ge5yrs";
    assert_eq!(t.meta.columns[t.col(ge5)].dtype, ColumnType::Integer);
    assert_eq!(t.sum_i64(ge5), 88651);
    // Spelling variants folded: 6 states.
    let mut states: Vec<String> = t.strings("location_state").into_iter().flatten().collect();
    states.sort();
    states.dedup();
    assert_eq!(states.len(), 6, "{states:?}");
    assert_eq!(t.meta.columns[t.col("period_month")].dtype, ColumnType::Date);
    // TOTAL and footnote rows are out of the data but recorded.
    assert!(t.meta.excluded.iter().any(|e| e.cells.first().map(String::as_str) == Some("TOTAL")));
    assert!(t.has_note("footnote") && t.has_note("total_row"));
    assert!(t.has_note("numbers_as_text"));
    // The prose sheet is reported, not loaded; the State Summary is its own table.
    assert!(t.meta.notes.iter().any(|n| n.kind == "sheet_skipped" && n.text.contains("Notes")));
    let summary = tables.iter().find(|t| t.meta.sheet.as_deref() == Some("State Summary")).expect("State Summary");
    assert_eq!(summary.rows(), 6);
}

#[test]
fn nmep_xls_same_rows() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("nmep_tpr_2024.xls"));
    assert_eq!((t.rows(), t.meta.columns.len()), (837, 15));
    assert_eq!(t.sum_i64("rdt_positive_ge5"), 88651);
}

#[test]
fn dhis2_export() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("dhis2_export_kwara_style.xls"));
    assert_eq!(t.rows(), 663);
    assert_eq!(t.meta.columns.len(), 15);
    let names = t.names();
    assert!(names.contains(&"orgunitlevel2".to_string()) && names.contains(&"orgunitlevel3".to_string()));
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "names must be unique: {names:?}");
    assert!(t.has_note("duplicate_header"));
    assert_eq!(t.meta.columns[t.col("period0me")].dtype, ColumnType::Integer);
    // Meanings are not guessed: the `kw ` prefix is kept in the data and noted.
    assert!(t.strings("orgunitlevel3").iter().flatten().all(|v| v.starts_with("kw ")));
    assert!(t.meta.notes.iter().any(|n| n.kind == "shared_affix" && n.text.contains("'kw '")));
}

#[test]
fn windows_1252_french() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("distribution_moustiquaires_cp1252.csv"));
    assert_eq!(t.rows(), 240);
    assert!(t.labels().contains(&"Région sanitaire".to_string()));
    assert!(t.strings("region_sanitaire").iter().flatten().any(|v| v == "Bouaké"));
    assert_eq!(t.meta.columns[t.col("couverture_pct")].dtype, ColumnType::Float);
    assert!((t.mean_f64("couverture_pct") - 68.89).abs() < 0.01, "{}", t.mean_f64("couverture_pct"));
    assert_eq!(t.meta.columns[t.col("date_de_distribution")].dtype, ColumnType::Date);
}

#[test]
fn utf16_rainfall() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("rainfall_kano_2024_utf16.txt"));
    assert_eq!((t.rows(), t.meta.columns.len()), (366, 4));
    assert!(t.meta.columns.iter().any(|c| c.dtype == ColumnType::Date));
    assert!(t.labels().contains(&"Max temp (°C)".to_string()));
}

#[test]
fn ods_summary() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("state_summary_2024.ods"));
    assert_eq!(t.rows(), 6);
    assert_eq!(t.labels(), vec!["State", "Tested", "Positive"]);
}

#[test]
fn dirty_commodity_ledger() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("commodity_stock_dirty.csv"));
    assert_eq!(t.rows(), 150);
    assert_eq!(t.meta.columns[t.col("closing_balance")].dtype, ColumnType::Integer);
    assert!(t.nulls("closing_balance") > 0);
    let reasons: Vec<_> = t.meta.excluded.iter().map(|e| e.reason).collect();
    assert!(reasons.contains(&quarry_ingest::ExcludeReason::ShortRow));
    assert!(reasons.contains(&quarry_ingest::ExcludeReason::LongRow));
    // The quoted field with a line break survives.
    assert!(t.strings("comment").iter().flatten().any(|v| v.contains('\n')));
}

#[test]
fn awkward_and_wide_and_small() {
    let Some(dir) = shared("fixtures") else { return };
    let t = load_one(&dir.join("awkward_headers.csv"));
    assert_eq!((t.rows(), t.meta.columns.len()), (50, 7));
    let mut n = t.names();
    n.sort();
    n.dedup();
    assert_eq!(n.len(), 7);
    let t = load_one(&dir.join("wide_600_columns.csv"));
    assert_eq!((t.rows(), t.meta.columns.len()), (40, 600));
    let t = load_one(&dir.join("survey_prompt_injection.csv"));
    assert_eq!((t.rows(), t.meta.columns.len()), (60, 5));
    let t = load_one(&dir.join("header_only.csv"));
    assert_eq!((t.rows(), t.meta.columns.len()), (0, 3));
    let t = load_one(&dir.join("population_by_lga.csv"));
    assert_eq!(t.rows(), 24);
}

#[test]
fn bad_files_get_clear_errors() {
    let Some(dir) = shared("fixtures/bad") else { return };
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("bad/ readable") {
        let path = entry.expect("entry").path();
        let started = std::time::Instant::now();
        let err = match quarry_ingest::prepare(&path, &IngestOptions::default(), &Quiet) {
            Err(e) => e,
            Ok(_) => panic!("{} should fail", path.display()),
        };
        assert!(started.elapsed().as_secs() < 10, "{} took too long", path.display());
        let msg = err.to_string();
        assert!(msg.contains(path.file_name().and_then(|f| f.to_str()).expect("name")), "{msg}");
        assert!(!err.hint.is_empty() && err.kind != ErrorKind::Internal, "{msg}");
        seen += 1;
    }
    assert!(seen >= 6);
}
