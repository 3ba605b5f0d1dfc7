//! SQL-friendly, unique, stable names from whatever headers a file has.
//!
//! `Persons tested positive for malaria by RDT / <5yrs` becomes
//! `tested_positive_malaria_rdt_lt5yrs`: lower case ASCII, symbols spelled
//! out, filler words dropped, at most 48 characters, never a reserved word or
//! a leading digit, unique within the table. The same labels always give the
//! same names.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

const FILLER: &[&str] =
    &["a", "an", "the", "of", "for", "by", "with", "and", "in", "on", "to", "at", "from", "persons", "number"];

const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "create",
    "cross",
    "current_date",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "except",
    "exists",
    "false",
    "fetch",
    "filter",
    "for",
    "from",
    "full",
    "group",
    "having",
    "in",
    "inner",
    "insert",
    "intersect",
    "interval",
    "into",
    "is",
    "join",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "null",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "right",
    "select",
    "set",
    "table",
    "then",
    "true",
    "union",
    "unnest",
    "update",
    "user",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
    "date",
    "time",
    "timestamp",
];

const MAX_LEN: usize = 48;

fn spell_symbols(label: &str) -> String {
    let mut s = String::with_capacity(label.len() + 8);
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        let word = match c {
            '<' if chars.peek() == Some(&'=') => {
                chars.next();
                " le "
            }
            '>' if chars.peek() == Some(&'=') => {
                chars.next();
                " ge "
            }
            '<' => " lt ",
            '>' => " gt ",
            '≥' => " ge ",
            '≤' => " le ",
            '%' => " pct ",
            '€' => " eur ",
            '$' => " usd ",
            '£' => " gbp ",
            '#' => " num ",
            '&' | '+' => " and ",
            '=' => " eq ",
            _ => {
                s.push(c);
                continue;
            }
        };
        s.push_str(word);
    }
    s
}

/// One label to a base name (not yet unique).
pub fn base_name(label: &str) -> String {
    let spelled = spell_symbols(label);
    let ascii: String = spelled.nfkd().filter(|c| c.is_ascii()).collect::<String>().to_lowercase();
    let words: Vec<&str> = ascii.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let kept: Vec<&str> = words.iter().copied().filter(|w| !FILLER.contains(w)).collect();
    let words = if kept.is_empty() { words } else { kept };
    // `lt 5yrs` reads better as `lt5yrs`.
    let mut parts: Vec<String> = Vec::new();
    for w in words {
        match parts.last_mut() {
            Some(prev)
                if matches!(prev.as_str(), "lt" | "gt" | "le" | "ge")
                    && w.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                prev.push_str(w)
            }
            _ => parts.push(w.to_string()),
        }
    }
    let mut name = String::new();
    for p in parts {
        if !name.is_empty() && name.len() + 1 + p.len() > MAX_LEN {
            break;
        }
        if !name.is_empty() {
            name.push('_');
        }
        name.push_str(&p);
    }
    name.truncate(MAX_LEN);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "c_");
    }
    if RESERVED.contains(&name.as_str()) {
        name.push('_');
    }
    name
}

/// Names for all columns: unique, `column_N` (1-based) for blank labels.
pub fn column_names(labels: &[String]) -> Vec<String> {
    let mut used = HashSet::new();
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut base = base_name(l);
            if base.is_empty() {
                base = format!("column_{}", i + 1);
            }
            unique(base, &mut used)
        })
        .collect()
}

/// `base`, or `base_2`, `base_3`, … whichever is free; records it as used.
pub fn unique(base: String, used: &mut HashSet<String>) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while used.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    used.insert(name.clone());
    name
}

/// A table name from a file stem and, for workbooks, a sheet name.
pub fn table_name(stem: &str, sheet: Option<&str>) -> String {
    let mut name = base_name(stem);
    if name.is_empty() {
        name = "table".into();
    }
    if let Some(s) = sheet {
        let s = base_name(s);
        if !s.is_empty() {
            name = format!("{name}_{s}");
        }
    }
    if name.starts_with("c_") && !stem.starts_with("c_") {
        name = format!("t_{}", &name[2..]);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            base_name("Persons tested positive for malaria by RDT / <5yrs"),
            "tested_positive_malaria_rdt_lt5yrs"
        );
        assert_eq!(
            base_name("Persons tested positive for malaria by RDT / ≥5yrs"),
            "tested_positive_malaria_rdt_ge5yrs"
        );
        assert_eq!(base_name("Région sanitaire"), "region_sanitaire");
        assert_eq!(base_name("Coût unitaire (€)"), "cout_unitaire_eur");
        assert_eq!(base_name("Couverture (%)"), "couverture_pct");
        assert_eq!(base_name(" id "), "id");
        assert_eq!(base_name("select"), "select_");
        assert_eq!(base_name("1st dose"), "c_1st_dose");
        assert_eq!(base_name("Max temp (°C)"), "max_temp_c");
        let n = column_names(&["value".into(), "value".into(), "".into(), "Value".into()]);
        assert_eq!(n, vec!["value", "value_2", "column_3", "value_3"]);
        assert!(base_name(&"very long header words ".repeat(10)).len() <= MAX_LEN);
        assert_eq!(table_name("nmep_tpr_2024", Some("Facility Data")), "nmep_tpr_2024_facility_data");
        assert_eq!(table_name("2015", None), "t_2015");
    }
}
