//! Text from the data as it may appear inside the model's data block:
//! control characters dropped, length capped, and tags that could close the
//! block (or open an instruction) defused. Every place that puts a cell
//! value, label or file name in front of the model uses [`data_str`].

/// A string from the data, safe to put inside a `<data>` block: no tags,
/// no newlines, at most `max` characters.
pub fn data_str(s: &str, max: usize) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    for tag in ["data", "table", "result", "system", "instructions", "definitions"] {
        for (open, safe) in [(format!("</{tag}"), format!("‹/{tag}")), (format!("<{tag}"), format!("‹{tag}"))] {
            let lower = out.to_lowercase();
            if lower.contains(&open) {
                let mut fixed = String::new();
                let mut rest = out.as_str();
                let mut lrest = lower.as_str();
                while let Some(i) = lrest.find(&open) {
                    fixed.push_str(&rest[..i]);
                    fixed.push_str(&safe);
                    rest = &rest[i + open.len()..];
                    lrest = &lrest[i + open.len()..];
                }
                fixed.push_str(rest);
                out = fixed;
            }
        }
    }
    out
}
