//! Spreadsheets as government and programme reports lay them out: several
//! tables on a sheet (stacked, side by side), headerless text, cross-tabs
//! with total rows and columns, periods as columns, indicators as rows,
//! formulas saved without results, and units written in the cells. Each
//! writer returns the truth it planted.

use std::io;
use std::path::Path;

use rust_xlsxwriter::{Format, Formula, Workbook};

use crate::{xerr, Rng, STATES};

/// Facts one generated table must have once loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct TableTruth {
    pub name: String,
    pub rows: usize,
    /// Column name → sum of its values (integers).
    pub sums: Vec<(String, i64)>,
}

impl TableTruth {
    fn new(name: &str, rows: usize, sums: &[(&str, i64)]) -> TableTruth {
        TableTruth { name: name.into(), rows, sums: sums.iter().map(|(c, s)| (c.to_string(), *s)).collect() }
    }
}

/// `report.xlsx`: "Table 1: Tests by state" (3 rows), two blank rows, then
/// "Table 2: Stock by LGA" with other columns (4 rows), and a footnote.
pub fn write_stacked_tables(path: &Path) -> io::Result<Vec<TableTruth>> {
    let mut rng = Rng::new(11);
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let ws = wb.add_worksheet().set_name("Report").map_err(xerr)?;
    ws.merge_range(0, 0, 0, 2, "Table 1: Tests by state", &bold).map_err(xerr)?;
    for (c, h) in ["State", "Tested", "Positive"].iter().enumerate() {
        ws.write_string(1, c as u16, *h).map_err(xerr)?;
    }
    let (mut tested, mut positive) = (0i64, 0i64);
    for (i, (state, _)) in STATES.iter().take(3).enumerate() {
        let t = rng.range(500, 2000) as i64;
        let p = rng.range(100, t as u64) as i64;
        let r = 2 + i as u32;
        ws.write_string(r, 0, *state).map_err(xerr)?;
        ws.write_number(r, 1, t as f64).map_err(xerr)?;
        ws.write_number(r, 2, p as f64).map_err(xerr)?;
        tested += t;
        positive += p;
    }
    ws.write_string(7, 0, "Table 2: Stock by LGA").map_err(xerr)?;
    for (c, h) in ["LGA", "State", "RDT kits in stock"].iter().enumerate() {
        ws.write_string(8, c as u16, *h).map_err(xerr)?;
    }
    let mut stock = 0i64;
    for (i, (state, lgas)) in STATES.iter().take(2).enumerate() {
        for (j, lga) in lgas.iter().take(2).enumerate() {
            let s = rng.range(0, 900) as i64;
            let r = 9 + (i * 2 + j) as u32;
            ws.write_string(r, 0, *lga).map_err(xerr)?;
            ws.write_string(r, 1, *state).map_err(xerr)?;
            ws.write_number(r, 2, s as f64).map_err(xerr)?;
            stock += s;
        }
    }
    ws.write_string(14, 0, "Source: LMIS, provisional figures.").map_err(xerr)?;
    wb.save(path).map_err(xerr)?;
    Ok(vec![
        TableTruth::new("report_tests_by_state", 3, &[("tested", tested), ("positive", positive)]),
        TableTruth::new("report_stock_by_lga", 4, &[("rdt_kits_stock", stock)]),
    ])
}

/// `report.csv`: the stacked report saved as CSV (`;`-separated, decimal
/// commas, as Excel writes it in comma-decimal locales): two titled tables
/// one under the other.
pub fn write_stacked_csv(path: &Path) -> io::Result<Vec<TableTruth>> {
    let mut rng = Rng::new(17);
    let mut s = String::from("Table 1: Tests by state;;\nState;Tested;Positive\n");
    let (mut tested, mut positive) = (0i64, 0i64);
    for (state, _) in STATES.iter().take(3) {
        let t = rng.range(500, 2000) as i64;
        let p = rng.range(100, t as u64) as i64;
        s.push_str(&format!("{state};{t};{p}\n"));
        tested += t;
        positive += p;
    }
    s.push_str(";;\nTable 2: Stock by LGA;;\nLGA;Kits;Share of need (%)\n");
    let mut kits = 0i64;
    for lga in STATES[1].1 {
        let k = rng.range(0, 900) as i64;
        s.push_str(&format!("{lga};{k};{},{}\n", rng.range(10, 99), rng.range(0, 9)));
        kits += k;
    }
    std::fs::write(path, s)?;
    Ok(vec![
        TableTruth::new("report_tests_by_state", 3, &[("tested", tested), ("positive", positive)]),
        TableTruth::new("report_stock_by_lga", STATES[1].1.len(), &[("kits", kits)]),
    ])
}

/// `blocks.xlsx`: two titled blocks side by side with a blank column
/// between them, of different lengths.
pub fn write_side_by_side(path: &Path) -> io::Result<Vec<TableTruth>> {
    let mut rng = Rng::new(12);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet().set_name("Summary").map_err(xerr)?;
    ws.write_string(0, 0, "Tests by state").map_err(xerr)?;
    ws.write_string(1, 0, "State").map_err(xerr)?;
    ws.write_string(1, 1, "Tested").map_err(xerr)?;
    let mut tested = 0i64;
    for (i, (state, _)) in STATES.iter().enumerate() {
        let t = rng.range(100, 999) as i64;
        ws.write_string(2 + i as u32, 0, *state).map_err(xerr)?;
        ws.write_number(2 + i as u32, 1, t as f64).map_err(xerr)?;
        tested += t;
    }
    ws.write_string(0, 3, "Stock by LGA").map_err(xerr)?;
    ws.write_string(1, 3, "LGA").map_err(xerr)?;
    ws.write_string(1, 4, "Kits").map_err(xerr)?;
    let mut kits = 0i64;
    for (i, lga) in STATES[0].1.iter().enumerate() {
        let k = rng.range(0, 99) as i64;
        ws.write_string(2 + i as u32, 3, *lga).map_err(xerr)?;
        ws.write_number(2 + i as u32, 4, k as f64).map_err(xerr)?;
        kits += k;
    }
    wb.save(path).map_err(xerr)?;
    Ok(vec![
        TableTruth::new("blocks_tests_by_state", STATES.len(), &[("tested", tested)]),
        TableTruth::new("blocks_stock_by_lga", STATES[0].1.len(), &[("kits", kits)]),
    ])
}

pub const MONTHS: [&str; 3] = ["Jan 2024", "Feb 2024", "Mar 2024"];

/// `crosstabs.xlsx`: `Monthly` (states × months with a Total row and a
/// Total column), `Quarterly` (states × quarters), `Indicators`
/// (indicators as rows, years across as numbers). The long forms' `value`
/// sums equal the data's.
pub fn write_crosstabs(path: &Path) -> io::Result<Vec<TableTruth>> {
    let mut rng = Rng::new(13);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet().set_name("Monthly").map_err(xerr)?;
    ws.write_string(0, 0, "State").map_err(xerr)?;
    for (c, m) in MONTHS.iter().enumerate() {
        ws.write_string(0, 1 + c as u16, *m).map_err(xerr)?;
    }
    ws.write_string(0, 4, "Total").map_err(xerr)?;
    let mut col_sums = [0i64; 3];
    for (i, (state, _)) in STATES.iter().enumerate() {
        let r = 1 + i as u32;
        ws.write_string(r, 0, *state).map_err(xerr)?;
        let mut total = 0;
        for (c, sum) in col_sums.iter_mut().enumerate() {
            let v = rng.range(10, 500) as i64;
            ws.write_number(r, 1 + c as u16, v as f64).map_err(xerr)?;
            *sum += v;
            total += v;
        }
        ws.write_number(r, 4, total as f64).map_err(xerr)?;
    }
    let last = 1 + STATES.len() as u32;
    ws.write_string(last, 0, "Total").map_err(xerr)?;
    for (c, s) in col_sums.iter().enumerate() {
        ws.write_number(last, 1 + c as u16, *s as f64).map_err(xerr)?;
    }
    ws.write_number(last, 4, col_sums.iter().sum::<i64>() as f64).map_err(xerr)?;
    let all: i64 = col_sums.iter().sum();

    let ws = wb.add_worksheet().set_name("Quarterly").map_err(xerr)?;
    ws.write_string(0, 0, "State").map_err(xerr)?;
    for q in 1..=4u16 {
        ws.write_string(0, q, format!("Q{q} 2024")).map_err(xerr)?;
    }
    let mut quarters = 0i64;
    for (i, (state, _)) in STATES.iter().enumerate() {
        ws.write_string(1 + i as u32, 0, *state).map_err(xerr)?;
        for q in 1..=4u16 {
            let v = rng.range(0, 3000) as i64;
            ws.write_number(1 + i as u32, q, v as f64).map_err(xerr)?;
            quarters += v;
        }
    }

    let ws = wb.add_worksheet().set_name("Indicators").map_err(xerr)?;
    ws.write_string(0, 0, "Indicator").map_err(xerr)?;
    for (c, y) in [2022, 2023, 2024].iter().enumerate() {
        ws.write_number(0, 1 + c as u16, *y as f64).map_err(xerr)?;
    }
    let mut indicators = 0i64;
    for (i, name) in ["Persons tested", "Confirmed cases", "Treated with ACT"].iter().enumerate() {
        ws.write_string(1 + i as u32, 0, *name).map_err(xerr)?;
        for c in 0..3u16 {
            let v = rng.range(1000, 90_000) as i64;
            ws.write_number(1 + i as u32, 1 + c, v as f64).map_err(xerr)?;
            indicators += v;
        }
    }
    wb.save(path).map_err(xerr)?;
    let n = STATES.len();
    Ok(vec![
        TableTruth::new(
            "crosstabs_monthly",
            n,
            &[("jan_2024", col_sums[0]), ("feb_2024", col_sums[1]), ("mar_2024", col_sums[2])],
        ),
        TableTruth::new("crosstabs_monthly_long", n * 3, &[("value", all)]),
        TableTruth::new("crosstabs_quarterly_long", n * 4, &[("value", quarters)]),
        TableTruth::new("crosstabs_indicators_long", 9, &[("value", indicators)]),
    ])
}

/// `formulas.xlsx`, saved without formula results as scripts and some
/// exporters write them: a `TPR` column of `=C2/B2*100` (Quarry computes
/// these) and a `Zone` column of `VLOOKUP`s into another sheet (kept as
/// text). Returns the rows and the sum of TPR.
pub fn write_formulas_without_results(path: &Path) -> io::Result<(usize, f64)> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet().set_name("TPR").map_err(xerr)?;
    for (c, h) in ["State", "Tested", "Positive", "TPR", "Zone"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).map_err(xerr)?;
    }
    let mut rng = Rng::new(14);
    let mut tpr = 0.0;
    for (i, (state, _)) in STATES.iter().enumerate() {
        let r = 1 + i as u32;
        let t = rng.range(100, 1000);
        let p = rng.range(0, t);
        ws.write_string(r, 0, *state).map_err(xerr)?;
        ws.write_number(r, 1, t as f64).map_err(xerr)?;
        ws.write_number(r, 2, p as f64).map_err(xerr)?;
        ws.write_formula(r, 3, Formula::new(format!("=C{}/B{}*100", r + 1, r + 1))).map_err(xerr)?;
        ws.write_formula(r, 4, Formula::new(format!("=VLOOKUP(A{},Zones!A:B,2,FALSE)", r + 1))).map_err(xerr)?;
        tpr += p as f64 / t as f64 * 100.0;
    }
    let zones = wb.add_worksheet().set_name("Zones").map_err(xerr)?;
    zones.write_string(0, 0, "State").map_err(xerr)?;
    zones.write_string(0, 1, "Zone").map_err(xerr)?;
    for (i, (state, _)) in STATES.iter().enumerate() {
        zones.write_string(1 + i as u32, 0, *state).map_err(xerr)?;
        zones.write_string(1 + i as u32, 1, if i % 2 == 0 { "North" } else { "South" }).map_err(xerr)?;
    }
    wb.save(path).map_err(xerr)?;
    strip_formula_results(path)?;
    Ok((STATES.len(), tpr))
}

/// Rewrite a workbook's sheets without the formulas' stored results
/// (`<f>…</f><v>0</v>` → `<f>…</f>`), as openpyxl and other scripts save them.
pub fn strip_formula_results(path: &Path) -> io::Result<()> {
    let zerr = |e: zip::result::ZipError| io::Error::other(e.to_string());
    let mut src = zip::ZipArchive::new(std::fs::File::open(path)?).map_err(zerr)?;
    let mut out = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let mut entry = src.by_index(i).map_err(zerr)?;
        let name = entry.name().map_err(zerr)?.to_string();
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut entry, &mut bytes)?;
        if name.starts_with("xl/worksheets/") {
            bytes = String::from_utf8_lossy(&bytes).replace("</f><v>0</v>", "</f>").into_bytes();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default()).map_err(zerr)?;
        io::Write::write_all(&mut out, &bytes)?;
    }
    let bytes = out.finish().map_err(zerr)?.into_inner();
    std::fs::write(path, bytes)
}

/// `units.csv`: percentages, dollars and naira written in the cells, and a
/// column mixing two currencies. Returns the truth: TPR sum (percent
/// points), cost sum in cents, budget sum.
pub fn write_units_csv(path: &Path) -> io::Result<(i64, i64, i64)> {
    let mut rng = Rng::new(15);
    let mut s = String::from("Facility,TPR,Cost,Budget,Paid\n");
    let (mut tpr, mut cents, mut budget) = (0i64, 0i64, 0i64);
    for i in 0..8 {
        let p = rng.range(5, 95) as i64;
        let c = rng.range(1000, 500_000) as i64;
        let b = rng.range(1000, 90_000) as i64;
        let paid = if i % 2 == 0 { format!("$ {}", c / 100) } else { format!("₦{b}") };
        s.push_str(&format!("PHC {i},{p}%,\"${}.{:02}\",\"₦{}\",{paid}\n", group(c / 100), c % 100, group(b)));
        tpr += p;
        cents += c;
        budget += b;
    }
    std::fs::write(path, s)?;
    Ok((tpr, cents, budget))
}

fn group(n: i64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, ch) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A headerless CSV (or TSV with `delim` tab): state, month, tested,
/// positive. Returns rows and the tested sum.
pub fn write_headerless(path: &Path, delim: char) -> io::Result<(usize, i64)> {
    let mut rng = Rng::new(16);
    let mut s = String::new();
    let mut tested = 0;
    let mut rows = 0;
    for month in ["2024-01", "2024-02"] {
        for (state, _) in STATES.iter().take(2) {
            let t = rng.range(50, 200) as i64;
            let p = rng.range(0, t as u64);
            s.push_str(&format!("{state}{delim}{month}{delim}{t}{delim}{p}\n"));
            tested += t;
            rows += 1;
        }
    }
    std::fs::write(path, s)?;
    Ok((rows, tested))
}
