//! Result tables as text for the terminal, for every command that prints one.

pub(crate) fn render_table(t: &quarry_agent::Table, max_rows: usize) -> String {
    let cells: Vec<Vec<String>> =
        t.rows.iter().take(max_rows).map(|r| r.iter().map(quarry_agent::answer::plain).collect()).collect();
    let widths: Vec<usize> = t
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells.iter().map(|r| r[i].chars().count()).chain([c.name.chars().count()]).max().unwrap_or(1).min(40)
        })
        .collect();
    let fmt_row = |vals: Vec<&str>| -> String {
        vals.iter()
            .zip(&widths)
            .map(|(v, w)| {
                let v: String = v.chars().take(*w).collect();
                format!("{v:<w$}")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut s = fmt_row(t.columns.iter().map(|c| c.name.as_str()).collect());
    s.push('\n');
    s.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
    for r in &cells {
        s.push('\n');
        s.push_str(&fmt_row(r.iter().map(String::as_str).collect()));
    }
    if t.rows.len() > max_rows || t.truncated {
        s.push_str(&format!(
            "\n… {} rows shown of {}{}",
            max_rows.min(t.rows.len()),
            t.rows.len(),
            if t.truncated { "+" } else { "" }
        ));
    }
    s
}
