//! `quarry gen`: the project's own test, demo and benchmark files, written by `quarry-testdata`.

use std::path::Path;

use crate::fail;

/// The demo's clinic workbook as next month's report (July added), in directory `out`.
fn next_month(out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    let opts = quarry_testdata::ClinicOptions { months: 7, ..Default::default() };
    quarry_testdata::write_clinic_workbook_with(&out.join("clinic_reports_2024.xlsx"), &opts).map(|_| ())
}

pub(crate) fn cmd_gen(kind: &str, out: &Path, rows: usize) -> bool {
    let r = match kind {
        "csv" => quarry_testdata::write_big_csv(out, rows),
        "xlsx" => quarry_testdata::write_big_xlsx(out, rows),
        "suite" => quarry_testdata::write_eval_suite(out).map(|p| eprintln!("written: {}", p.display())),
        "next-month" => next_month(out),
        other => return fail(format!("unknown kind '{other}': use csv, xlsx, suite or next-month")),
    };
    match r {
        Ok(()) => true,
        Err(e) => fail(format!("{}: {e}", out.display())),
    }
}
