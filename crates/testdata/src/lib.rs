//! # quarry-testdata: the project's own data
//!
//! Deterministic generators for the demo dataset, the core test files and the
//! benchmark inputs, so the repository stands alone. Each messy file comes
//! with a [`Truth`]: the facts a correct ingest must recover, computed while
//! the file is written (never typed in by hand).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, Workbook, XlsxError};

pub mod anomalies;
pub mod layouts;

/// `../shared/<sub>` beside the checkout (the workplace's fixtures and
/// attacks), when present. With QUARRY_REQUIRE_SHARED=1 (CI) a missing folder
/// panics instead of letting the tests that need it skip.
pub fn shared_dir(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared").join(sub);
    if p.exists() {
        Some(p)
    } else if std::env::var("QUARRY_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("{} is missing and QUARRY_REQUIRE_SHARED=1", p.display());
    } else {
        eprintln!("skipping: {} not present", p.display());
        None
    }
}

/// SplitMix64: a small seeded generator, so files are identical on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

pub const STATES: &[(&str, &[&str])] = &[
    ("Kano", &["Dala", "Fagge", "Gwale"]),
    ("Lagos", &["Ikeja", "Surulere", "Epe"]),
    ("Kaduna", &["Zaria", "Chikun", "Kauru"]),
    ("Rivers", &["Bonny", "Okrika", "Obio/Akpor"]),
];

/// Facts the clinic workbook must yield.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    pub data_rows: usize,
    pub columns: usize,
    pub positive_ge5_sum: i64,
    pub tested_lt5_sum: i64,
    pub states: usize,
    pub facilities: usize,
    /// Rows where a value was written as "-" (not done).
    pub not_done: usize,
    /// Positives aged 5 and over per state, in the order of [`STATES`].
    pub positive_ge5_by_state: Vec<(String, i64)>,
}

/// How a clinic workbook is written: how many months of 2024 it covers
/// (6 by default, 7 for "next month's" report), and the group header over
/// the positives (a renamed header gives renamed columns).
#[derive(Debug, Clone)]
pub struct ClinicOptions {
    pub months: u8,
    pub positives_header: &'static str,
}

impl Default for ClinicOptions {
    fn default() -> ClinicOptions {
        ClinicOptions { months: 6, positives_header: "Persons tested positive by RDT" }
    }
}

fn xerr(e: XlsxError) -> io::Error {
    io::Error::other(e.to_string())
}

/// A monthly malaria facility report as programmes send it: two title rows, a
/// blank row, a two-row merged header, dates as Excel serials shown `mmm-yy`,
/// numbers stored as text (`"1,204"`), `-` for "not done", state names with a
/// trailing space or in capitals, a blank separator row, a TOTAL row, a
/// footnote, and a prose `Notes` sheet.
pub fn write_clinic_workbook(path: &Path) -> io::Result<Truth> {
    write_clinic_workbook_with(path, &ClinicOptions::default())
}

/// The clinic workbook with other months or headers (see [`ClinicOptions`]).
pub fn write_clinic_workbook_with(path: &Path, o: &ClinicOptions) -> io::Result<Truth> {
    let mut rng = Rng::new(2024);
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let center = Format::new().set_bold().set_align(FormatAlign::Center);
    let month_fmt = Format::new().set_num_format("mmm-yy");
    let ws = wb.add_worksheet().set_name("Monthly Data").map_err(xerr)?;
    ws.write_string_with_format(0, 0, "NATIONAL MALARIA PROGRAMME — DEMO", &bold).map_err(xerr)?;
    ws.write_string(1, 0, "Monthly facility report, January to June 2024").map_err(xerr)?;
    ws.merge_range(3, 0, 3, 2, "Location", &center).map_err(xerr)?;
    ws.write_string_with_format(3, 3, "Period", &center).map_err(xerr)?;
    ws.merge_range(3, 4, 3, 5, "Persons tested for malaria by RDT", &center).map_err(xerr)?;
    ws.merge_range(3, 6, 3, 7, o.positives_header, &center).map_err(xerr)?;
    ws.write_string_with_format(3, 8, "Remarks", &center).map_err(xerr)?;
    for (c, h) in ["State", "LGA", "Health Facility", "Month", "<5yrs", "≥5yrs", "<5yrs", "≥5yrs"].iter().enumerate()
    {
        ws.write_string_with_format(4, c as u16, *h, &bold).map_err(xerr)?;
    }
    let mut row: u32 = 5;
    let mut t = Truth {
        data_rows: 0,
        columns: 9,
        positive_ge5_sum: 0,
        tested_lt5_sum: 0,
        states: STATES.len(),
        facilities: 0,
        not_done: 0,
        positive_ge5_by_state: Vec::new(),
    };
    let (mut tot_t5, mut tot_tg, mut tot_p5, mut tot_pg) = (0i64, 0i64, 0i64, 0i64);
    for (si, (state, lgas)) in STATES.iter().enumerate() {
        if si == 2 {
            row += 1; // a blank separator row mid-table
        }
        let before = tot_pg;
        for lga in lgas.iter() {
            for f in 1..=2 {
                t.facilities += 1;
                let facility = format!("PHC {lga} {f}");
                for month in 1..=o.months {
                    let state_text = match rng.range(0, 9) {
                        0 => format!("{state} "),
                        1 => state.to_uppercase(),
                        _ => state.to_string(),
                    };
                    ws.write_string(row, 0, &state_text).map_err(xerr)?;
                    ws.write_string(row, 1, *lga).map_err(xerr)?;
                    ws.write_string(row, 2, &facility).map_err(xerr)?;
                    let d = ExcelDateTime::from_ymd(2024, month, 1).map_err(xerr)?;
                    ws.write_datetime_with_format(row, 3, &d, &month_fmt).map_err(xerr)?;
                    let tested5 = rng.range(40, 1400) as i64;
                    let testedg = rng.range(80, 1500) as i64;
                    let pos5 = tested5 * rng.range(20, 60) as i64 / 100;
                    let posg = testedg * rng.range(15, 50) as i64 / 100;
                    tot_t5 += tested5;
                    tot_tg += testedg;
                    tot_p5 += pos5;
                    tot_pg += posg;
                    for (c, v) in [(4u16, tested5), (5, testedg), (6, pos5), (7, posg)] {
                        if v >= 1000 && rng.chance(0.3) {
                            // A number stored as text, with a thousands separator.
                            ws.write_string(row, c, format!("{},{:03}", v / 1000, v % 1000)).map_err(xerr)?;
                        } else {
                            ws.write_number(row, c, v as f64).map_err(xerr)?;
                        }
                    }
                    if rng.chance(0.05) {
                        ws.write_string(row, 8, "-").map_err(xerr)?;
                        t.not_done += 1;
                    } else if rng.chance(0.1) {
                        ws.write_string(row, 8, "stock-out of RDT kits mid-month").map_err(xerr)?;
                    }
                    t.data_rows += 1;
                    row += 1;
                }
            }
        }
        t.positive_ge5_by_state.push((state.to_string(), tot_pg - before));
    }
    t.positive_ge5_sum = tot_pg;
    t.tested_lt5_sum = tot_t5;
    ws.write_string_with_format(row, 0, "TOTAL", &bold).map_err(xerr)?;
    for (c, v) in [(4u16, tot_t5), (5, tot_tg), (6, tot_p5), (7, tot_pg)] {
        ws.write_number_with_format(row, c, v as f64, &bold).map_err(xerr)?;
    }
    ws.write_string(row + 2, 0, "Source: generated demo data. Figures are illustrative.").map_err(xerr)?;
    let notes = wb.add_worksheet().set_name("Notes").map_err(xerr)?;
    notes.write_string(0, 0, "TPR is the share of people tested who were positive, times 100.").map_err(xerr)?;
    notes.write_string(1, 0, "Private facilities report through the LGA officer each month.").map_err(xerr)?;
    wb.save(path).map_err(xerr)?;
    Ok(t)
}

/// Facts the French CSV must yield.
#[derive(Debug, Clone, PartialEq)]
pub struct FrenchTruth {
    pub rows: usize,
    /// Sum of `Couverture (%)` in tenths, to compare exactly.
    pub coverage_tenths_sum: i64,
    pub first_region: String,
}

/// A French export from Excel: Windows-1252, `;` separators, decimal commas,
/// `dd/mm/yyyy` dates, accents in headers and values.
pub fn write_french_csv(path: &Path) -> io::Result<FrenchTruth> {
    let mut rng = Rng::new(33);
    let regions = ["Abidjan-Cocody", "Bouaké", "Daloa", "Korhogo", "San-Pédro", "Yamoussoukro"];
    let mut s = String::from(
        "Région sanitaire;Date de distribution;Moustiquaires distribuées;Couverture (%);Coût unitaire (€)\r\n",
    );
    let mut t = FrenchTruth { rows: 0, coverage_tenths_sum: 0, first_region: String::new() };
    for i in 0..120 {
        let r = regions[rng.range(0, regions.len() as u64 - 1) as usize];
        if i == 0 {
            t.first_region = r.to_string();
        }
        let day = rng.range(1, 28);
        let month = rng.range(1, 12);
        let cov = rng.range(400, 990) as i64;
        t.coverage_tenths_sum += cov;
        s.push_str(&format!(
            "{r};{day:02}/{month:02}/2024;{};{},{};{},{:02}\r\n",
            rng.range(100, 5000),
            cov / 10,
            cov % 10,
            rng.range(2, 5),
            rng.range(0, 99)
        ));
        t.rows += 1;
    }
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&s);
    std::fs::write(path, bytes)?;
    Ok(t)
}

/// An Excel "Unicode text" export: UTF-16 LE with BOM, tabs, CRLF.
pub fn write_utf16_rainfall(path: &Path) -> io::Result<usize> {
    let mut rng = Rng::new(7);
    let mut s = String::from("Station\tDate\tRainfall (mm)\tMax temp (°C)\r\n");
    let mut n = 0;
    for day in 0..60 {
        let month = 7 + day / 30;
        let d = day % 30 + 1;
        s.push_str(&format!(
            "Kano Aminu Kano Intl\t2024-{month:02}-{d:02}\t{}.{}\t{}.{}\r\n",
            rng.range(0, 40),
            rng.range(0, 9),
            rng.range(27, 38),
            rng.range(0, 9)
        ));
        n += 1;
    }
    let mut bytes = vec![0xFF, 0xFE];
    for u in s.encode_utf16() {
        bytes.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(path, bytes)?;
    Ok(n)
}

/// The demo dataset: writes the files into `dir` and returns their paths
/// (the last, a facility-month table with anomalies planted, for insights).
pub fn write_demo(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let wb = dir.join("clinic_reports_2024.xlsx");
    write_clinic_workbook(&wb)?;
    let fr = dir.join("distribution_moustiquaires.csv");
    write_french_csv(&fr)?;
    let rain = dir.join("rainfall_kano_utf16.txt");
    write_utf16_rainfall(&rain)?;
    let pop = dir.join("population_2024.csv");
    write_population_csv(&pop)?;
    let months = dir.join("facility_months_2024.csv");
    anomalies::write_facility_months(&months, true)?;
    Ok(vec![wb, fr, rain, pop, months])
}

/// Projected population per state of the clinic workbook, numbers written
/// with thousands separators (as statistics offices publish them).
pub fn write_population_csv(path: &Path) -> io::Result<()> {
    let mut rng = Rng::new(77);
    let mut s = String::from("State,Population 2024 (projected),Under-5 share (%)\n");
    for (state, _) in STATES {
        let pop = rng.range(2_000_000, 15_000_000);
        let grouped = pop
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",");
        s.push_str(&format!("{state},\"{grouped}\",{}.{}\n", rng.range(15, 21), rng.range(0, 10)));
    }
    std::fs::write(path, s)
}

const BIG_HEADER: &str = "id,report_date,state,lga,facility,tested,positive,positivity,remark\n";

fn big_row(rng: &mut Rng, i: usize, out: &mut String) {
    use std::fmt::Write as _;
    let (state, lgas) = STATES[i % STATES.len()];
    let lga = lgas[(i / 7) % lgas.len()];
    let tested = rng.range(10, 2000);
    let positive = tested * rng.range(5, 70) / 100;
    let month = i % 12 + 1;
    let day = i % 28 + 1;
    let remark = if i.is_multiple_of(97) { "late report" } else { "" };
    let _ = writeln!(
        out,
        "{i},2024-{month:02}-{day:02},{state},{lga},Facility {} {},{tested},{positive},{:.4},{remark}",
        lga,
        i % 500,
        positive as f64 / tested as f64
    );
}

/// A question suite for `quarry eval suite` over the clinic workbook, with
/// the answers this generator planted: writes `clinics.xlsx` and
/// `clinics-suite.yaml` into `dir`; the suite file's path.
pub fn write_eval_suite(dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let t = write_clinic_workbook(&dir.join("clinics.xlsx"))?;
    let cases = [
        (
            "positives_ge5",
            "How many people aged 5 and over tested positive by RDT in total?",
            t.positive_ge5_sum as usize,
            "sum",
        ),
        (
            "tested_lt5",
            "How many children under 5 were tested for malaria by RDT in total?",
            t.tested_lt5_sum as usize,
            "sum",
        ),
        ("states", "How many states does the report cover?", t.states, "distinct count"),
        ("facilities", "How many health facilities reported?", t.facilities, "distinct count"),
        ("rows", "How many facility-month reports are there?", t.data_rows, "count"),
    ];
    let mut yaml = String::from("# Questions over the generated clinic workbook; the answers are the generator's.\nname: generated-clinics\ncases:\n");
    for (id, q, n, concept) in cases {
        yaml.push_str(&format!(
            "  - id: {id}\n    files: [clinics.xlsx]\n    question: \"{q}\"\n    level: easy\n    concepts: [{concept}]\n    expected: {{kind: number, value: {n}, tolerance: 0.5}}\n"
        ));
    }
    let path = dir.join("clinics-suite.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// A large clean-ish CSV for the benchmark (about 68 bytes a row).
pub fn write_big_csv(path: &Path, rows: usize) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    w.write_all(BIG_HEADER.as_bytes())?;
    let mut rng = Rng::new(1);
    let mut buf = String::with_capacity(1 << 16);
    for i in 0..rows {
        big_row(&mut rng, i, &mut buf);
        if buf.len() > 60_000 {
            w.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes())?;
    w.flush()
}

/// The same rows as an XLSX workbook (one sheet), for the benchmark.
pub fn write_big_xlsx(path: &Path, rows: usize) -> io::Result<()> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet_with_constant_memory().map_err(xerr)?;
    for (c, h) in BIG_HEADER.trim_end().split(',').enumerate() {
        ws.write_string(0, c as u16, h).map_err(xerr)?;
    }
    let mut rng = Rng::new(1);
    let mut line = String::new();
    for i in 0..rows {
        line.clear();
        big_row(&mut rng, i, &mut line);
        let r = (i + 1) as u32;
        for (c, v) in line.trim_end_matches('\n').split(',').enumerate() {
            let c = c as u16;
            match c {
                0 | 5 | 6 | 7 => {
                    ws.write_number(r, c, v.parse::<f64>().unwrap_or(0.0)).map_err(xerr)?;
                }
                _ if v.is_empty() => {}
                _ => {
                    ws.write_string(r, c, v).map_err(xerr)?;
                }
            }
        }
    }
    wb.save(path).map_err(xerr)?;
    Ok(())
}
