//! A facility-month table with anomalies planted where the generator says —
//! positives above tests, a facility-month not reported, an outlier, a
//! duplicated row — and the same table clean, for the insights pass: it must
//! find every planted one, and none of those kinds in the clean table.

use std::io::{self, Write};
use std::path::Path;

use crate::{Rng, STATES};

/// Where the anomalies are, as (facility, month `YYYY-MM-01`).
#[derive(Debug, Clone, PartialEq)]
pub struct Planted {
    /// Rows whose `positive` exceeds their `tested`.
    pub positives_over_tested: Vec<(String, String)>,
    /// Facility-months with no row.
    pub missing: Vec<(String, String)>,
    /// The row whose `tested` is far outside its state's, and its value.
    pub outlier: (String, String, u64),
    /// The row written twice.
    pub duplicated: (String, String),
    pub facilities: usize,
    pub months: usize,
}

const MONTHS: usize = 6;

fn month(m: usize) -> String {
    format!("2024-{m:02}-01")
}

/// `state,lga,facility,month,tested,positive` for 24 facilities over six
/// months of 2024; with `plant`, the anomalies of [`Planted`] (returned).
pub fn write_facility_months(path: &Path, plant: bool) -> io::Result<Planted> {
    let at = |f: &str, m: usize| (f.to_string(), month(m));
    let planted = Planted {
        positives_over_tested: vec![at("PHC Dala 1", 3), at("PHC Epe 2", 5)],
        missing: vec![at("PHC Bonny 2", 4)],
        outlier: ("PHC Zaria 1".into(), month(2), 48_000),
        duplicated: at("PHC Ikeja 1", 6),
        facilities: STATES.iter().map(|(_, l)| l.len() * 2).sum(),
        months: MONTHS,
    };
    let mut rng = Rng::new(77);
    let mut out = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "state,lga,facility,month,tested,positive")?;
    for (state, lgas) in STATES {
        for lga in lgas.iter() {
            for f in 1..=2 {
                let facility = format!("PHC {lga} {f}");
                for m in 1..=MONTHS {
                    let mut tested = rng.range(300, 900);
                    let mut positive = tested * rng.range(25, 55) / 100;
                    let here = (facility.clone(), month(m));
                    if plant {
                        if planted.missing.contains(&here) {
                            continue;
                        }
                        if planted.positives_over_tested.contains(&here) {
                            positive = tested + 7 + m as u64;
                        }
                        if (here.0.as_str(), here.1.as_str())
                            == (planted.outlier.0.as_str(), planted.outlier.1.as_str())
                        {
                            tested = planted.outlier.2;
                        }
                    }
                    let line = format!("{state},{lga},{facility},{},{tested},{positive}", month(m));
                    writeln!(out, "{line}")?;
                    if plant && here == planted.duplicated {
                        writeln!(out, "{line}")?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(planted)
}
