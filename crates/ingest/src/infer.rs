//! Column type inference over the whole column.
//!
//! The rule (also in ARCHITECTURE.md): a column gets a non-text type only if
//! *every* non-null value fits it. Placeholders (`-`, `N/A`, …) and blanks are
//! null. Numbers beat dates beat booleans beat text. A column whose values are
//! mostly numbers but has a few words stays text, and a note says so: nothing
//! is silently dropped.

use ahash::AHashMap as HashMap;

use crate::cell::{self, datefmt, numfmt, Cell};
use crate::table::{ColumnType, Note, NoteKind};

/// How many distinct text values a column may have and still be checked for
/// spelling variants and shared prefixes.
pub const DISTINCT_TRACK: usize = 1000;

#[derive(Debug, Clone)]
pub struct ColumnInfer {
    num_fits: u8,
    num_integral: u8,
    date_fits: u8,
    has_time: bool,
    bool_ok: bool,
    pub non_null: u64,
    pub nulls: u64,
    numbers: u64,
    non_numbers: u64,
    non_number_examples: Vec<String>,
    /// Numbers no integer or float column can hold exactly (kept as text).
    beyond_range: u64,
    beyond_example: Option<String>,
    placeholders: HashMap<String, u64>,
    errors: u64,
    trimmed: u64,
    /// Distinct trimmed text values with counts and what each told
    /// inference, until more than DISTINCT_TRACK.
    distinct: Option<HashMap<String, Seen>>,
    /// Values seen in a non-text form (native numbers, dates, booleans).
    natives: u64,
    /// Units written with numbers (`45%`, `$1,200`), with counts.
    units: Vec<(cell::Unit, u64)>,
    /// Placeholder cells (not blank) read as null.
    pub placeholder_cells: u64,
}

impl Default for ColumnInfer {
    fn default() -> Self {
        ColumnInfer {
            num_fits: numfmt::ALL,
            num_integral: numfmt::ALL,
            date_fits: datefmt::ALL,
            has_time: false,
            bool_ok: true,
            non_null: 0,
            nulls: 0,
            numbers: 0,
            non_numbers: 0,
            non_number_examples: Vec::new(),
            beyond_range: 0,
            beyond_example: None,
            placeholders: HashMap::new(),
            errors: 0,
            trimmed: 0,
            distinct: Some(HashMap::new()),
            natives: 0,
            units: Vec::new(),
            placeholder_cells: 0,
        }
    }
}

/// What one distinct text value told inference. Folding a value's
/// notations into the column's is idempotent (`&=`, `|=`), so a value seen
/// again is only counted: it is not classified again.
#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u64,
    /// A number, and the unit written with it.
    number: Option<Option<cell::Unit>>,
    /// A number no integer or float holds (see [`cell::beyond_range`]).
    beyond: bool,
}

/// The decision for one column: its type and how to read text into it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnPlan {
    pub dtype: ColumnType,
    /// Number notation (a `numfmt` bit) for numeric columns.
    pub num_fmt: u8,
    /// Date notation (a `datefmt` bit) for date columns.
    pub date_fmt: u8,
    /// Spelling variants folded into one canonical value (text columns).
    pub canonical: HashMap<String, String>,
    /// The unit written with every number of a numeric column (`%`, `₦`),
    /// taken off when the numbers are read.
    pub unit: Option<cell::Unit>,
}

impl ColumnInfer {
    pub fn observe(&mut self, c: &Cell) {
        match *c {
            Cell::Empty => self.nulls += 1,
            Cell::Error(_) => {
                self.nulls += 1;
                self.errors += 1;
            }
            Cell::Text(raw) => {
                let t = cell::trim(raw);
                if cell::is_placeholder(t) {
                    self.nulls += 1;
                    if !t.is_empty() {
                        self.placeholder_cells += 1;
                        // Bounded by the placeholder words and their cases.
                        match self.placeholders.get_mut(t) {
                            Some(n) => *n += 1,
                            None => {
                                self.placeholders.insert(t.to_string(), 1);
                            }
                        }
                    }
                    return;
                }
                self.non_null += 1;
                if t.len() != raw.len() {
                    self.trimmed += 1;
                }
                self.text(t);
            }
            Cell::Int(_) => self.native(true, false, false),
            Cell::Float(f) => {
                if f.is_nan() {
                    self.nulls += 1;
                    return;
                }
                if f.fract() != 0.0 || f.abs() > 9.0e15 {
                    self.num_integral = 0;
                }
                self.native(true, false, false)
            }
            Cell::Bool(_) => self.native(false, false, true),
            Cell::DateTime(d) => {
                self.has_time |= d.time() != chrono::NaiveTime::MIN;
                self.native(false, true, false)
            }
        }
    }

    /// A non-null, non-placeholder text value: classified once, counted each
    /// time it recurs while the column has few distinct values.
    fn text(&mut self, t: &str) {
        if let Some(seen) = self.distinct.as_mut().and_then(|m| m.get_mut(t)) {
            seen.count += 1;
            let seen = *seen;
            self.count(seen);
            return;
        }
        let seen = self.classify(t);
        self.count(seen);
        if let Some(map) = &mut self.distinct {
            if map.len() < DISTINCT_TRACK {
                map.insert(t.to_string(), seen);
            } else {
                self.distinct = None;
            }
        }
    }

    /// Fold the notations `t` fits into the column's; say what it was.
    fn classify(&mut self, t: &str) -> Seen {
        let mut unit = None;
        let number = cell::classify_number(t).or_else(|| {
            let (u, n) = cell::classify_unit_number(t)?;
            unit = Some(u);
            Some(n)
        });
        let mut beyond = false;
        match number {
            Some(n) => {
                self.num_fits &= n.fits;
                self.num_integral &= n.integral;
            }
            None => {
                beyond = cell::beyond_range(t);
                if beyond {
                    self.beyond_example.get_or_insert_with(|| truncate(t, 40));
                }
                if self.non_number_examples.len() < 3 {
                    let shown = truncate(t, 40);
                    if !self.non_number_examples.contains(&shown) {
                        self.non_number_examples.push(shown);
                    }
                }
            }
        }
        if self.date_fits != 0 {
            match cell::classify_date(t) {
                Some(d) => {
                    self.date_fits &= d.fits;
                    self.has_time |= d.has_time;
                }
                None => self.date_fits = 0,
            }
        }
        if self.bool_ok && cell::parse_bool(t).is_none() {
            self.bool_ok = false;
        }
        Seen { count: 1, number: number.map(|_| unit), beyond }
    }

    /// Count one more cell holding a value that was classified as `seen`.
    fn count(&mut self, seen: Seen) {
        match seen.number {
            Some(unit) => {
                self.numbers += 1;
                if let Some(u) = unit {
                    match self.units.iter_mut().find(|x| x.0 == u) {
                        Some(x) => x.1 += 1,
                        None => self.units.push((u, 1)),
                    }
                }
            }
            None => {
                self.num_fits = 0;
                self.non_numbers += 1;
                self.beyond_range += u64::from(seen.beyond);
            }
        }
    }

    /// Fold in what `other` saw in the rows that follow this column's own:
    /// the result is what one walk over both would have seen.
    pub fn merge(&mut self, other: ColumnInfer) {
        self.num_fits &= other.num_fits;
        self.num_integral &= other.num_integral;
        self.date_fits &= other.date_fits;
        self.has_time |= other.has_time;
        self.bool_ok &= other.bool_ok;
        self.non_null += other.non_null;
        self.nulls += other.nulls;
        self.numbers += other.numbers;
        self.non_numbers += other.non_numbers;
        for e in other.non_number_examples {
            if self.non_number_examples.len() < 3 && !self.non_number_examples.contains(&e) {
                self.non_number_examples.push(e);
            }
        }
        self.beyond_range += other.beyond_range;
        if self.beyond_example.is_none() {
            self.beyond_example = other.beyond_example;
        }
        for (p, n) in other.placeholders {
            *self.placeholders.entry(p).or_default() += n;
        }
        self.errors += other.errors;
        self.trimmed += other.trimmed;
        self.distinct = match (self.distinct.take(), other.distinct) {
            (Some(mut a), Some(b)) => {
                for (v, seen) in b {
                    // One value is classified the same wherever it stands.
                    a.entry(v).and_modify(|s| s.count += seen.count).or_insert(seen);
                }
                (a.len() <= DISTINCT_TRACK).then_some(a)
            }
            _ => None,
        };
        self.natives += other.natives;
        for (u, n) in other.units {
            match self.units.iter_mut().find(|x| x.0 == u) {
                Some(x) => x.1 += n,
                None => self.units.push((u, n)),
            }
        }
        self.placeholder_cells += other.placeholder_cells;
    }

    fn native(&mut self, number: bool, date: bool, boolean: bool) {
        self.non_null += 1;
        self.natives += 1;
        if number {
            self.numbers += 1;
        } else {
            self.num_fits = 0;
            self.non_numbers += 1;
        }
        if !date {
            self.date_fits = 0;
        }
        if !boolean {
            self.bool_ok = false;
        }
        // A native value in a text column is shown as text; keep counting it.
        self.distinct = None;
    }

    /// Decide the column's type. `prefer_decimal_comma` breaks the tie for
    /// values like `1,204` (true for `;`-separated files, as Excel writes them
    /// in comma-decimal locales).
    pub fn plan(&self, prefer_decimal_comma: bool) -> ColumnPlan {
        let mut plan =
            ColumnPlan { dtype: ColumnType::Text, num_fmt: 0, date_fmt: 0, canonical: HashMap::new(), unit: None };
        if self.non_null == 0 {
            return plan;
        }
        // Numbers in two units (dollars and naira) cannot be added: text.
        if self.num_fits != 0 && self.units.len() <= 1 {
            plan.unit = self.units.first().map(|u| u.0);
            let f = self.num_fits;
            plan.num_fmt = if f & numfmt::PLAIN != 0 {
                numfmt::PLAIN
            } else if f & numfmt::THOUSANDS_COMMA != 0 && f & numfmt::DECIMAL_COMMA != 0 {
                if prefer_decimal_comma {
                    numfmt::DECIMAL_COMMA
                } else {
                    numfmt::THOUSANDS_COMMA
                }
            } else if f & numfmt::THOUSANDS_COMMA != 0 {
                numfmt::THOUSANDS_COMMA
            } else {
                numfmt::DECIMAL_COMMA
            };
            plan.dtype = if self.num_integral & plan.num_fmt != 0 { ColumnType::Integer } else { ColumnType::Float };
            return plan;
        }
        if self.date_fits != 0 {
            let f = self.date_fits;
            plan.date_fmt = if f & datefmt::YMD != 0 {
                datefmt::YMD
            } else if f & datefmt::DMY != 0 {
                datefmt::DMY
            } else {
                datefmt::MDY
            };
            plan.dtype = if self.has_time { ColumnType::DateTime } else { ColumnType::Date };
            return plan;
        }
        if self.bool_ok {
            plan.dtype = ColumnType::Boolean;
            return plan;
        }
        plan.canonical = self.variants().into_iter().flat_map(|v| v.folded).collect();
        plan
    }

    /// Groups of values that differ only in case or inner spacing.
    fn variants(&self) -> Vec<Variant> {
        let Some(map) = &self.distinct else {
            return Vec::new();
        };
        let mut groups: HashMap<String, Vec<(&String, u64)>> = HashMap::new();
        for (v, seen) in map {
            groups.entry(fold_key(v)).or_default().push((v, seen.count));
        }
        let mut out: Vec<Variant> = groups
            .into_values()
            .filter(|g| g.len() > 1)
            .map(|mut g| {
                // Most frequent spelling wins; on a tie prefer one that is not all capitals.
                g.sort_by(|a, b| {
                    b.1.cmp(&a.1).then_with(|| is_shouting(a.0).cmp(&is_shouting(b.0))).then_with(|| a.0.cmp(b.0))
                });
                let canon = g[0].0.clone();
                let folded = g[1..].iter().map(|(v, _)| ((*v).clone(), canon.clone())).collect();
                let counts = g[1..].iter().map(|(v, n)| ((*v).clone(), *n)).collect();
                Variant { canon, folded, counts }
            })
            .collect();
        out.sort_by(|a, b| a.canon.cmp(&b.canon));
        out
    }

    /// Notes about what was cleaned in this column.
    pub fn notes(&self, label: &str, name: &str, plan: &ColumnPlan) -> Vec<Note> {
        let mut notes = Vec::new();
        if !self.placeholders.is_empty() {
            let mut ps: Vec<_> = self.placeholders.iter().collect();
            ps.sort();
            let total: u64 = ps.iter().map(|p| p.1).sum();
            let list = ps.iter().map(|(p, n)| format!("'{p}' ×{n}")).collect::<Vec<_>>().join(", ");
            let more = self.placeholder_cells.saturating_sub(total);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            notes.push(
                Note::column(
                    NoteKind::Placeholders,
                    name,
                    format!("'{label}': {} placeholder values read as null ({list}{more})", self.placeholder_cells),
                )
                .counting(self.placeholder_cells),
            );
        }
        if self.errors > 0 {
            notes.push(
                Note::column(
                    NoteKind::CellErrors,
                    name,
                    format!("'{label}': {} spreadsheet error values (such as #DIV/0!) read as null", self.errors),
                )
                .counting(self.errors),
            );
        }
        notes.extend(self.unit_note(label, name, plan));
        if let (true, Some(e)) = (self.beyond_range > 0, &self.beyond_example) {
            notes.push(Note::column(
                NoteKind::OutOfRange,
                name,
                format!(
                    "'{label}': {} values are numbers too large for a 64-bit integer or float to hold exactly (e.g. '{e}'); the column is kept as text so no digit is lost",
                    self.beyond_range
                ),));
        }
        if plan.dtype == ColumnType::Text && self.numbers > 0 && self.non_numbers > 0 {
            let share = self.numbers as f64 / self.non_null as f64;
            if share >= 0.5 {
                notes.push(Note::column(
                    NoteKind::MixedTypes,
                    name,
                    format!(
                        "'{label}': {} values are numbers but {} are not (e.g. {}); kept as text so nothing is lost. Use try_cast({name} AS DOUBLE) to treat it as numbers.",
                        self.numbers,
                        self.non_numbers,
                        self.non_number_examples.iter().map(|e| format!("'{e}'")).collect::<Vec<_>>().join(", ")
                    ),));
            }
        }
        if plan.dtype.is_numeric() && self.natives < self.numbers {
            let how = match plan.num_fmt {
                numfmt::DECIMAL_COMMA => " with decimal commas (68,5 = 68.5)",
                numfmt::THOUSANDS_COMMA => " with thousands separators (1,204 = 1204)",
                _ => "",
            };
            if self.natives > 0 {
                notes.push(Note::column(
                    NoteKind::NumbersAsText,
                    name,
                    format!(
                        "'{label}': {} numbers stored as text were read as numbers{how}",
                        self.numbers - self.natives
                    ),
                ));
            } else if !how.is_empty() {
                notes.push(Note::column(NoteKind::NumberFormat, name, format!("'{label}': numbers written{how}")));
            }
        }
        if matches!(plan.dtype, ColumnType::Date | ColumnType::DateTime) && self.natives == 0 {
            let f = self.date_fits;
            let (fmt, ambiguous) = match plan.date_fmt {
                datefmt::YMD => ("year-month-day", false),
                datefmt::DMY => ("day/month/year", f & datefmt::MDY != 0),
                _ => ("month/day/year", f & datefmt::DMY != 0),
            };
            let mut text = format!("'{label}': dates read as {fmt}");
            if ambiguous && plan.date_fmt == datefmt::MDY {
                text.push_str(
                    "; every value fits both day/month and month/day, and the file's other date columns are written month/day, so month/day was chosen for this one too",
                );
            } else if ambiguous {
                text.push_str(
                    "; every value fits both day/month and month/day, so day/month (the international order) was chosen",
                );
            } else if plan.date_fmt != datefmt::YMD {
                text.push_str(" (decided from values that fit no other order)");
            }
            notes.push(Note::column(NoteKind::DateFormat, name, text));
        }
        if self.trimmed > 0 && plan.dtype == ColumnType::Text {
            notes.push(Note::column(
                NoteKind::Trimmed,
                name,
                format!("'{label}': {} values had leading or trailing spaces, removed", self.trimmed),
            ));
        }
        if plan.dtype == ColumnType::Text {
            for v in self.variants() {
                let list =
                    v.counts.iter().map(|(s, n)| format!("'{}' ×{n}", truncate(s, 40))).collect::<Vec<_>>().join(", ");
                notes.push(Note::column(
                    NoteKind::SpellingVariants,
                    name,
                    format!(
                        "'{label}': {list} written as '{}' (same value in other case or spacing)",
                        truncate(&v.canon, 40)
                    ),
                ));
            }
        }
        notes
    }

    /// What was done with units written in the numbers: taken off (and
    /// which), or the column kept as text because they differ.
    fn unit_note(&self, label: &str, name: &str, plan: &ColumnPlan) -> Option<Note> {
        let written: u64 = self.units.iter().map(|u| u.1).sum();
        let text = match (plan.unit, self.units.as_slice()) {
            (_, []) => return None,
            (Some(cell::Unit::Percent), _) => format!(
                "'{label}': {written} values written with % were read as numbers in percent points (45% is stored as 45, not 0.45)"
            ),
            (Some(cell::Unit::Currency(c)), _) => {
                format!("'{label}': amounts in {c} ({written} written with the symbol); the symbol was taken off, the numbers kept")
            }
            (None, units) if units.len() > 1 => {
                let list = units.iter().map(|u| format!("{} ×{}", u.0, u.1)).collect::<Vec<_>>().join(", ");
                format!("'{label}': numbers in several units ({list}); kept as text, since they cannot be added up as they stand — split the column by unit before adding")
            }
            (None, _) => return None,
        };
        Some(Note::column(NoteKind::Units, name, text))
    }

    /// The date orders every value fits (`datefmt` bits; 0 when not dates
    /// written as text).
    pub fn date_fits(&self) -> u8 {
        if self.natives > 0 {
            0
        } else {
            self.date_fits
        }
    }

    /// Distinct trimmed text values with counts, when the column has few.
    pub fn distinct_values(&self) -> Option<impl Iterator<Item = (&String, u64)>> {
        Some(self.distinct.as_ref()?.iter().map(|(v, seen)| (v, seen.count)))
    }
}

struct Variant {
    canon: String,
    folded: Vec<(String, String)>,
    counts: Vec<(String, u64)>,
}

fn fold_key(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn is_shouting(s: &str) -> bool {
    s.chars().any(char::is_alphabetic) && !s.chars().any(char::is_lowercase)
}

/// A value made safe to quote in a one-line note: at most `n` characters,
/// line breaks and tabs shown as `⏎` and `⇥`.
/// `s` as it is when it has at most `max` bytes; else its first `max` bytes
/// (on a character boundary) and `…`. Keeps excluded rows verbatim without
/// letting one 200 MB cell through.
pub fn cap(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

pub fn truncate(s: &str, n: usize) -> String {
    let mut t: String = s
        .chars()
        .take(n)
        .map(|c| match c {
            '\n' | '\r' => '⏎',
            '\t' => '⇥',
            c if c.is_control() => '�',
            c => c,
        })
        .collect();
    if s.chars().count() > n {
        t.push('…');
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(vals: &[&str], dc: bool) -> (ColumnPlan, ColumnInfer) {
        let mut c = ColumnInfer::default();
        for v in vals {
            c.observe(&Cell::Text(v));
        }
        (c.plan(dc), c)
    }

    #[test]
    fn whole_column_decides() {
        let mut vals: Vec<String> = (0..1500).map(|i| i.to_string()).collect();
        vals.push("X1500".into());
        let refs: Vec<&str> = vals.iter().map(|s| s.as_str()).collect();
        let (p, c) = infer(&refs, false);
        assert_eq!(p.dtype, ColumnType::Text);
        let notes = c.notes("v", "v", &p);
        assert!(notes.iter().any(|n| n.kind == "mixed_types"), "{notes:?}");
    }

    #[test]
    fn thousands_and_decimal_comma() {
        assert_eq!(infer(&["1,204", "350", "-"], false).0.dtype, ColumnType::Integer);
        let (p, _) = infer(&["58,5", "86,2", "79"], true);
        assert_eq!((p.dtype, p.num_fmt), (ColumnType::Float, numfmt::DECIMAL_COMMA));
        assert_eq!(infer(&["1.5", "2,5"], false).0.dtype, ColumnType::Text);
    }

    #[test]
    fn dates_decided_by_data() {
        let (p, _) = infer(&["03/04/2024", "13/04/2024"], false);
        assert_eq!((p.dtype, p.date_fmt), (ColumnType::Date, datefmt::DMY));
        let (p, _) = infer(&["03/04/2024", "04/13/2024"], false);
        assert_eq!((p.dtype, p.date_fmt), (ColumnType::Date, datefmt::MDY));
        let (p, _) = infer(&["03/04/2024", "04/13/2024", "13/04/2024"], false);
        assert_eq!(p.dtype, ColumnType::Text);
    }

    #[test]
    fn variants_fold_to_most_common() {
        let (p, c) = infer(&["Kano", "Kano", "KANO", "Kano ", "Lagos"], false);
        assert_eq!(p.canonical.get("KANO").map(String::as_str), Some("Kano"));
        let notes = c.notes("State", "state", &p);
        assert!(notes.iter().any(|n| n.kind == "spelling_variants"));
        assert!(notes.iter().any(|n| n.kind == "trimmed"));
    }

    /// A value seen again is counted as what it was classified the first
    /// time: the same counts, plan and notes as when every cell is
    /// classified afresh (one column per cell, merged).
    #[test]
    fn recurring_values_count_as_first_classified() {
        let cols: [&[&str]; 5] = [
            &["45%", "45%", "12%", "45%"],
            &["₦1,200", "₦1,200", "$5", "₦1,200", "$5"],
            &["12", "1e400", "1e400", "13", "x", "x", "y", "1e400"],
            &["2024-01-01", "2024-01-01", "Kano", "Kano", "yes", "Kano"],
            &["yes", "no", "yes", "yes"],
        ];
        for vals in cols {
            let (p, c) = infer(vals, false);
            let mut merged = ColumnInfer::default();
            for v in vals {
                let mut one = ColumnInfer::default();
                one.observe(&Cell::Text(v));
                merged.merge(one);
            }
            let counts = |c: &ColumnInfer| (c.numbers, c.non_numbers, c.beyond_range, c.units.clone(), c.non_null);
            assert_eq!(counts(&c), counts(&merged), "{vals:?}");
            assert_eq!(p, merged.plan(false), "{vals:?}");
            assert_eq!(c.notes("v", "v", &p), merged.notes("v", "v", &p), "{vals:?}");
        }
        let (_, c) = infer(&["45%", "45%", "x"], false);
        assert_eq!((c.numbers, c.units.clone()), (2, vec![(cell::Unit::Percent, 2)]));
    }

    #[test]
    fn natives_and_text_numbers_mix() {
        let mut c = ColumnInfer::default();
        c.observe(&Cell::Float(102.0));
        c.observe(&Cell::Text("1,204"));
        c.observe(&Cell::Text("-"));
        let p = c.plan(false);
        assert_eq!((p.dtype, p.num_fmt), (ColumnType::Integer, numfmt::THOUSANDS_COMMA));
    }
}
