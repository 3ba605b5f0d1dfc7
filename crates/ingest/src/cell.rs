//! One cell as every reader hands it over, and the rules that read meaning
//! out of text: placeholders, number formats, dates.
//!
//! Text readers produce only [`Cell::Text`]; spreadsheet readers also produce
//! native numbers, booleans and dates. Everything downstream (header finding,
//! type inference, Arrow building) works on `Cell`, so the rules live here once.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// A borrowed cell value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Empty,
    Text(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A native date/time (spreadsheet serial already converted).
    DateTime(NaiveDateTime),
    /// A spreadsheet error value such as `#DIV/0!`.
    Error(&'a str),
}

/// Strings that mean "no value" in the files people send. Matched after
/// trimming, case-insensitively. Documented in ARCHITECTURE.md.
pub const PLACEHOLDERS: &[&str] = &["", "-", "--", "---", "–", "—", "n/a", "na", "#n/a", "null", "nan"];

/// `str::trim`, with a fast path for the common case of nothing to trim.
#[inline]
pub fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if f > b' ' && f < 0x80 && l > b' ' && l < 0x80 => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

pub fn is_placeholder(s: &str) -> bool {
    if s.len() > 16 && trim(s).len() == s.len() {
        return false;
    }
    let t = trim(s);
    if t.len() > 4 || !matches!(t.as_bytes().first(), None | Some(b'-' | b'n' | b'N' | b'#' | 0xE2)) {
        return false;
    }
    PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(t))
}

/// Words that say a row or a column is a total (after trimming and a
/// trailing `:`, case-insensitive): total rows are kept out, and a column
/// so headed is checked against the columns before it.
const TOTAL_WORDS: &[&str] = &[
    "total",
    "totals",
    "grand total",
    "subtotal",
    "sub-total",
    "sub total",
    "total général",
    "total general",
    "totaux",
    "overall total",
    "sum",
];

/// True for text that says "total" (`TOTAL`, `Grand total:`, `Sub-total`).
pub fn is_total_word(text: &str) -> bool {
    let t = text.trim().trim_end_matches(':').trim();
    // Cheap tests first: this runs on every row.
    !t.is_empty()
        && t.len() <= 16
        && matches!(t.as_bytes()[0].to_ascii_lowercase(), b't' | b's' | b'g' | b'o')
        && if t.is_ascii() {
            TOTAL_WORDS.iter().any(|w| w.eq_ignore_ascii_case(t))
        } else {
            TOTAL_WORDS.contains(&t.to_lowercase().as_str())
        }
}

impl<'a> Cell<'a> {
    /// True for empty cells, whitespace and placeholder text, and spreadsheet errors.
    pub fn is_null(&self) -> bool {
        match self {
            Cell::Empty | Cell::Error(_) => true,
            Cell::Text(s) => is_placeholder(s),
            Cell::Float(f) => f.is_nan(),
            _ => false,
        }
    }

    /// True only for cells with nothing in them (placeholders are not blank:
    /// a row of `-` is still a row).
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => trim(s).is_empty(),
            _ => false,
        }
    }

    pub fn as_text(&self) -> Option<&'a str> {
        match self {
            Cell::Text(s) => Some(trim(s)),
            _ => None,
        }
    }

    /// Display form, used for labels, text columns holding mixed values, and notes.
    pub fn display(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) | Cell::Error(s) => s.trim().to_string(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => fmt_float(*f),
            Cell::Bool(b) => b.to_string(),
            Cell::DateTime(d) => fmt_datetime(*d),
        }
    }
}

pub fn fmt_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

pub fn fmt_datetime(d: NaiveDateTime) -> String {
    if d.time() == NaiveTime::MIN {
        d.date().format("%Y-%m-%d").to_string()
    } else {
        d.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

// ---------------------------------------------------------------- numbers

/// Number notations a column may be written in. A value can fit several
/// (`1,204` is 1204 with a thousands comma or 1.204 with a decimal comma);
/// the column keeps the notations every value fits.
pub mod numfmt {
    /// `1204`, `1204.5`, `-3e5`
    pub const PLAIN: u8 = 1;
    /// `1,204`, `1,204.5`
    pub const THOUSANDS_COMMA: u8 = 2;
    /// `68,5`, `1.234,5`, `1 234,5`
    pub const DECIMAL_COMMA: u8 = 4;
    pub const ALL: u8 = PLAIN | THOUSANDS_COMMA | DECIMAL_COMMA;
}

/// What a text value could be as a number: the notations it fits, and under
/// which of them it is a whole number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumClass {
    pub fits: u8,
    pub integral: u8,
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Digits grouped by `sep` in threes: `1,204,000`.
fn grouped(s: &[u8], sep: u8) -> bool {
    let mut parts = s.split(|&b| b == sep);
    let first = match parts.next() {
        Some(f) => f,
        None => return false,
    };
    if first.is_empty() || first.len() > 3 || !all_digits(first) {
        return false;
    }
    let mut n = 0;
    for p in parts {
        if p.len() != 3 || !all_digits(p) {
            return false;
        }
        n += 1;
    }
    n > 0
}

/// Whether unsigned `b` is written as Rust's `f64` parser reads a decimal:
/// digits with at most one `.` (one digit at least), then optionally `e`,
/// a sign and digits. `Some(true)` when it has an exponent — only then can
/// it be beyond `f64` (bodies are at most 40 bytes here, or checked by
/// parsing); `None` when it is no decimal at all (`2024-01-01`, `1.2.3`),
/// so the parser need not run on dates and codes.
fn float_shape(b: &[u8]) -> Option<bool> {
    let mut i = 0;
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i == b.len() {
        return Some(false);
    }
    if !matches!(b[i], b'e' | b'E') {
        return None;
    }
    i += 1;
    if i < b.len() && matches!(b[i], b'-' | b'+') {
        i += 1;
    }
    (i < b.len() && b[i..].iter().all(u8::is_ascii_digit)).then_some(true)
}

/// Classify trimmed text as a number. `None` when it is no number at all.
pub fn classify_number(s: &str) -> Option<NumClass> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 40 {
        return None;
    }
    let body = match b[0] {
        b'-' | b'+' => &b[1..],
        _ => b,
    };
    if body.is_empty() || !(body[0].is_ascii_digit() || body[0] == b'.' || body[0] == b',') {
        return None;
    }
    // Codes with leading zeros (`007`, `01234`) are identifiers, not numbers.
    if body.len() > 1 && body[0] == b'0' && body[1].is_ascii_digit() {
        return None;
    }
    let mut fits = 0u8;
    let mut integral = 0u8;
    let has_comma = body.contains(&b',');
    let has_dot = body.contains(&b'.');
    let has_space = body.contains(&b' ');
    if !has_comma && !has_space {
        if all_digits(body) {
            // Integers beyond i64 would become approximate floats: they are
            // not numbers here (see `beyond_range`), so no digit is lost.
            if s.parse::<i64>().is_err() {
                return None;
            }
            fits |= numfmt::PLAIN;
            integral |= numfmt::PLAIN;
            // A bare integer is also valid under the comma notations.
            fits |= numfmt::THOUSANDS_COMMA | numfmt::DECIMAL_COMMA;
            integral |= numfmt::THOUSANDS_COMMA | numfmt::DECIMAL_COMMA;
        } else if float_shape(body).is_some_and(|exp| !exp || s.parse::<f64>().is_ok_and(f64::is_finite)) {
            fits |= numfmt::PLAIN | numfmt::THOUSANDS_COMMA;
            // `1.234.567` style (dots as thousands) is read as decimal-comma notation.
            if has_dot && grouped(body, b'.') {
                fits |= numfmt::DECIMAL_COMMA;
                integral |= numfmt::DECIMAL_COMMA;
            }
        }
        return (fits != 0).then_some(NumClass { fits, integral });
    }
    // Thousands comma: 1,204 or 1,204.50
    if has_comma && !has_space {
        let (int_part, frac) = match body.iter().position(|&c| c == b'.') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        if grouped(int_part, b',') && frac.is_none_or(all_digits) {
            fits |= numfmt::THOUSANDS_COMMA;
            if frac.is_none() {
                integral |= numfmt::THOUSANDS_COMMA;
            }
        }
    }
    // Decimal comma: 68,5 / 1.234,5 / 1 234,5 / 1 234
    {
        let (int_part, frac) = match body.iter().rposition(|&c| c == b',') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        let int_ok = all_digits(int_part)
            || grouped(int_part, b'.')
            || grouped(int_part, b' ')
            || (int_part.is_empty() && frac.is_some());
        let frac_ok = frac.is_none_or(all_digits);
        let commas = body.iter().filter(|&&c| c == b',').count();
        if int_ok && frac_ok && commas <= 1 && !(int_part.is_empty() && frac.is_none()) {
            fits |= numfmt::DECIMAL_COMMA;
            if frac.is_none() {
                integral |= numfmt::DECIMAL_COMMA;
            }
        }
    }
    (fits != 0).then_some(NumClass { fits, integral })
}

// ---------------------------------------------------------------- units

/// A unit written in a number cell: `45%`, `$1,200.50`, `₦15,000`, `1 200 FCFA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// Stored as percent points: `45%` is 45.
    Percent,
    /// The symbol or code as written.
    Currency(&'static str),
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unit::Percent => f.write_str("%"),
            Unit::Currency(c) => f.write_str(c),
        }
    }
}

/// Currency symbols and codes read out of amounts, longest first where one
/// starts another. Documented in ARCHITECTURE.md.
pub const CURRENCIES: &[&str] = &[
    "US$", "R$", "KSh", "FCFA", "CFA", "$", "€", "£", "₦", "¥", "₹", "₵", "₱", "NGN", "USD", "EUR", "GBP", "KES",
    "GHS", "ZAR", "XOF", "XAF", "UGX", "TZS", "ETB", "RWF", "CDF", "INR",
];

/// Split a unit off a number: the unit, the number's text, and whether a
/// minus sign stood before the unit (`-$5`). `None` when no unit is there.
pub fn split_unit(s: &str) -> Option<(Unit, &str, bool)> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) if !r.starts_with(|c: char| c.is_ascii_digit()) => (true, r.trim_start()),
        _ => (false, s),
    };
    if let Some(r) = body.strip_suffix('%') {
        return Some((Unit::Percent, r.trim_end(), neg));
    }
    // Cheap test first (this runs on every text cell): a unit stands at an
    // end, so a value that starts and ends with a digit has none.
    let b = body.as_bytes();
    if b.first().is_none_or(u8::is_ascii_digit) && b.last().is_none_or(u8::is_ascii_digit) {
        return None;
    }
    // A unit is at most four letters and a number holds at most one (`e`):
    // longer words (`Facility Dala 0`) hold no amount.
    if b.iter().filter(|c| c.is_ascii_alphabetic()).count() > 5 {
        return None;
    }
    let (first, last) = (b.first().copied(), b.last().copied());
    for &c in CURRENCIES {
        let cb = c.as_bytes();
        if first == cb.first().copied() {
            if let Some(r) = body.strip_prefix(c) {
                return Some((Unit::Currency(c), r.trim_start(), neg));
            }
        }
        if last != cb.last().copied() {
            continue;
        }
        if let Some(r) = body.strip_suffix(c) {
            let r = r.trim_end();
            if r.ends_with(|ch: char| ch.is_ascii_digit()) {
                return Some((Unit::Currency(c), r, neg));
            }
        }
    }
    None
}

/// A number with a unit: the unit and how the number is written.
pub fn classify_unit_number(s: &str) -> Option<(Unit, NumClass)> {
    if !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let (u, rest, neg) = split_unit(s)?;
    if rest.is_empty() || (neg && rest.starts_with(['-', '+'])) {
        return None;
    }
    Some((u, classify_number(rest)?))
}

/// True for text written as a plain number that no 64-bit integer or
/// finite float holds exactly: `12345678901234567890123`, `1e400`.
/// [`classify_number`] does not count these as numbers; ingest says so.
pub fn beyond_range(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let b = body.as_bytes();
    if b.is_empty() || b.len() > 400 || !b[0].is_ascii_digit() || (b.len() > 1 && b[0] == b'0' && b[1].is_ascii_digit())
    {
        return false;
    }
    if all_digits(b) {
        return s.parse::<i64>().is_err();
    }
    float_shape(b).is_some() && s.parse::<f64>().is_ok_and(|f| !f.is_finite())
}

/// Parse text under one notation. Returns `None` when it does not fit.
pub fn parse_number(s: &str, fmt: u8) -> Option<f64> {
    if fmt == numfmt::PLAIN {
        return s.parse::<f64>().ok().filter(|f| f.is_finite());
    }
    // Numbers are at most 40 bytes (`classify_number`): cleaned on the stack.
    let mut buf = [0u8; 48];
    let mut n = 0;
    for &c in s.as_bytes() {
        let c = match (fmt, c) {
            (numfmt::THOUSANDS_COMMA, b',') => continue,
            (numfmt::THOUSANDS_COMMA, c) => c,
            (_, b'.' | b' ') => continue,
            (_, b',') => b'.',
            (_, c) => c,
        };
        *buf.get_mut(n)? = c;
        n += 1;
    }
    std::str::from_utf8(&buf[..n]).ok()?.parse::<f64>().ok().filter(|f| f.is_finite())
}

pub fn parse_int(s: &str, fmt: u8) -> Option<i64> {
    if fmt == numfmt::PLAIN {
        return s.strip_prefix('+').unwrap_or(s).parse::<i64>().ok();
    }
    let mut buf = [0u8; 48];
    let mut n = 0;
    for &c in s.as_bytes() {
        if !matches!(c, b',' | b'.' | b' ' | b'+') {
            *buf.get_mut(n)? = c;
            n += 1;
        }
    }
    std::str::from_utf8(&buf[..n]).ok()?.parse::<i64>().ok()
}

// ---------------------------------------------------------------- dates

/// Date notations. A value like `03/04/2024` fits both day-first and
/// month-first; the column keeps what every value fits, so the data decides.
pub mod datefmt {
    /// `2024-03-31`, `2024/03/31`
    pub const YMD: u8 = 1;
    /// `31/03/2024`, `31-03-2024`, `31.03.2024`
    pub const DMY: u8 = 2;
    /// `03/31/2024`
    pub const MDY: u8 = 4;
    pub const ALL: u8 = YMD | DMY | MDY;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateClass {
    pub fits: u8,
    pub has_time: bool,
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    b.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
}

/// A date split into its three numeric parts and an optional time.
type DateParts<'a> = (&'a [u8], &'a [u8], &'a [u8], Option<&'a str>);

fn split_date(s: &str) -> Option<DateParts<'_>> {
    let (date, time) = match s.find([' ', 'T']) {
        Some(p) => (&s[..p], Some(s[p + 1..].trim())),
        None => (s, None),
    };
    let b = date.as_bytes();
    let sep = *b.iter().find(|c| matches!(c, b'-' | b'/' | b'.'))?;
    let mut parts = b.split(move |&c| c == sep);
    let (a, m, c) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((a, m, c, time))
}

fn parse_time(t: &str) -> Option<NaiveTime> {
    let t = t.trim_end_matches('Z');
    for f in ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"] {
        if let Ok(v) = NaiveTime::parse_from_str(t, f) {
            return Some(v);
        }
    }
    None
}

/// Classify trimmed text as a date or date-time.
pub fn classify_date(s: &str) -> Option<DateClass> {
    if s.len() < 8 || s.len() > 32 || !s.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let (a, b, c, time) = split_date(s)?;
    let has_time = match time {
        Some(t) => {
            parse_time(t)?;
            true
        }
        None => false,
    };
    let (x, y, z) = (num(a)?, num(b)?, num(c)?);
    let mut fits = 0;
    if a.len() == 4 && NaiveDate::from_ymd_opt(x as i32, y, z).is_some() {
        fits |= datefmt::YMD;
    }
    if c.len() == 4 && a.len() <= 2 && b.len() <= 2 {
        if NaiveDate::from_ymd_opt(z as i32, y, x).is_some() {
            fits |= datefmt::DMY;
        }
        if NaiveDate::from_ymd_opt(z as i32, x, y).is_some() {
            fits |= datefmt::MDY;
        }
    }
    (fits != 0).then_some(DateClass { fits, has_time })
}

pub fn parse_date(s: &str, fmt: u8) -> Option<NaiveDateTime> {
    let (a, b, c, time) = split_date(s)?;
    let (x, y, z) = (num(a)?, num(b)?, num(c)?);
    let d = match fmt {
        datefmt::YMD => NaiveDate::from_ymd_opt(x as i32, y, z),
        datefmt::DMY => NaiveDate::from_ymd_opt(z as i32, y, x),
        _ => NaiveDate::from_ymd_opt(z as i32, x, y),
    }?;
    let t = match time {
        Some(t) => parse_time(t)?,
        None => NaiveTime::MIN,
    };
    Some(d.and_time(t))
}

pub fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `float_shape` stands in for a character filter and `f64` parse: on
    /// every string of up to five of the characters that filter let through,
    /// the two agree on what is a finite number.
    #[test]
    fn float_shape_agrees_with_the_f64_parser() {
        let alphabet = b"0123456789.eE-+";
        let mut words: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = words
                .iter()
                .filter(|w| w.len() == words.last().map_or(0, Vec::len))
                .flat_map(|w| alphabet.iter().map(move |&c| [w.as_slice(), &[c]].concat()))
                .collect();
            words.extend(longer);
        }
        for w in words.iter().filter(|w| !w.is_empty() && !matches!(w[0], b'-' | b'+')) {
            let s = std::str::from_utf8(w).unwrap();
            let parsed = s.parse::<f64>().is_ok_and(f64::is_finite);
            assert_eq!(float_shape(w).is_some_and(|exp| !exp || parsed), parsed, "{s}");
        }
        for s in ["1e400", "1.5e308", "9".repeat(39).as_str(), "inf", "NaN", "1_000"] {
            let parsed = s.parse::<f64>().is_ok_and(f64::is_finite);
            assert_eq!(float_shape(s.as_bytes()).is_some_and(|exp| !exp || parsed), parsed, "{s}");
        }
    }

    #[test]
    fn every_placeholder_and_unit_passes_the_cheap_tests() {
        for p in PLACEHOLDERS {
            assert!(is_placeholder(p) && is_placeholder(&p.to_uppercase()), "{p}");
        }
        for c in CURRENCIES {
            assert_eq!(split_unit(&format!("{c}5")).map(|u| u.0), Some(Unit::Currency(c)), "{c}5");
            assert!(split_unit(&format!("5 {c}")).is_some(), "5 {c}");
        }
        assert_eq!(split_unit("2024-01-01"), None);
        assert_eq!(classify_unit_number("Kano"), None);
    }

    #[test]
    fn numbers() {
        let c = classify_number("1,204").unwrap();
        assert_eq!(c.fits, numfmt::THOUSANDS_COMMA | numfmt::DECIMAL_COMMA);
        assert_eq!(c.integral & numfmt::THOUSANDS_COMMA, numfmt::THOUSANDS_COMMA);
        let c = classify_number("68,5").unwrap();
        assert_eq!(c.fits, numfmt::DECIMAL_COMMA);
        assert_eq!(parse_number("68,5", numfmt::DECIMAL_COMMA), Some(68.5));
        assert_eq!(parse_number("1.234,5", numfmt::DECIMAL_COMMA), Some(1234.5));
        assert_eq!(parse_int("1,204", numfmt::THOUSANDS_COMMA), Some(1204));
        assert!(classify_number("12a").is_none());
        assert!(classify_number("Kano").is_none());
        assert!(classify_number("inf").is_none());
        assert!(classify_number("-").is_none());
        assert!(classify_number("1,2,3").is_none());
        assert!(classify_number("007").is_none());
        assert!(classify_number("0,5").is_some());
        let c = classify_number("-3.5e2").unwrap();
        assert!(c.fits & numfmt::PLAIN != 0);
        assert_eq!(classify_number("42").unwrap().integral & numfmt::PLAIN, numfmt::PLAIN);
    }

    #[test]
    fn dates() {
        assert_eq!(classify_date("2024-03-31").unwrap().fits, datefmt::YMD);
        assert_eq!(classify_date("31/03/2024").unwrap().fits, datefmt::DMY);
        assert_eq!(classify_date("03/31/2024").unwrap().fits, datefmt::MDY);
        assert_eq!(classify_date("03/04/2024").unwrap().fits, datefmt::DMY | datefmt::MDY);
        assert!(classify_date("2024-01-01 10:30").unwrap().has_time);
        assert!(classify_date("2024-02-30").is_none());
        assert!(classify_date("12345678").is_none());
        assert_eq!(
            parse_date("18/08/2024", datefmt::DMY).unwrap().date(),
            NaiveDate::from_ymd_opt(2024, 8, 18).unwrap()
        );
    }

    #[test]
    fn placeholders() {
        for p in ["-", "N/A", "n/a", "NULL", "", "  ", " - "] {
            assert!(is_placeholder(p), "{p:?}");
        }
        for p in ["0", "Kano", "None", "None of these", "?"] {
            assert!(!is_placeholder(p), "{p:?}");
        }
    }
}
