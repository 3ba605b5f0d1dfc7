//! What real models do instead of what the API documents: code in fenced
//! blocks rather than tool calls, JSON with fences, prose or trailing commas
//! around it. Parsed leniently here so each request can stay one simple step.

use serde_json::Value;

/// A fenced code block found in a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// The info string's first word, lower-cased (`sql`, `python`, or empty).
    pub lang: String,
    pub code: String,
}

/// Every ``` or ~~~ fenced block in `text`, in order. An unclosed final
/// block (a reply cut off mid-code) is returned too.
pub fn fenced_blocks(text: &str) -> Vec<Fenced> {
    let mut out = Vec::new();
    let mut open: Option<(String, &str, Vec<&str>)> = None;
    for line in text.lines() {
        let t = line.trim_start();
        match &mut open {
            None => {
                for fence in ["```", "~~~"] {
                    if let Some(rest) = t.strip_prefix(fence) {
                        let lang = rest.trim_start_matches(['`', '~']).split_whitespace().next().unwrap_or("");
                        open = Some((lang.to_ascii_lowercase(), fence, Vec::new()));
                        break;
                    }
                }
            }
            Some((lang, fence, lines)) => {
                if t.starts_with(*fence) && t.trim_start_matches(['`', '~']).trim().is_empty() {
                    out.push(Fenced { lang: std::mem::take(lang), code: lines.join("\n") });
                    open = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    if let Some((lang, _, lines)) = open {
        if !lines.is_empty() {
            out.push(Fenced { lang, code: lines.join("\n") });
        }
    }
    out
}

/// Parse JSON the way a forgiving reader would: as is; inside a code fence;
/// the first `{…}` or `[…]` in surrounding prose; with trailing commas dropped.
pub fn lenient_json(text: &str) -> Option<Value> {
    let t = text.trim();
    if t.is_empty() {
        return Some(Value::Object(Default::default()));
    }
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(b) = fenced_blocks(t).into_iter().next() {
        if let Some(v) = lenient_json(&b.code) {
            return Some(v);
        }
    }
    let start = t.find(['{', '['])?;
    let close = if t.as_bytes()[start] == b'{' { '}' } else { ']' };
    let end = t.rfind(close)?;
    if end <= start {
        return None;
    }
    let inner = &t[start..=end];
    if let Ok(v) = serde_json::from_str(inner) {
        return Some(v);
    }
    serde_json::from_str(&drop_trailing_commas(inner)).ok()
}

/// `,` directly before `}` or `]` (outside strings) removed.
fn drop_trailing_commas(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut in_str, mut esc) = (false, false);
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_str {
            out.push(c);
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_str = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fenced_blocks_are_found() {
        let t = "Here:\n```sql\nSELECT 1\n```\nand\n~~~python\nprint(1)\n~~~\n```\nSELECT 2";
        let b = fenced_blocks(t);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].lang.as_str(), b[0].code.as_str()), ("sql", "SELECT 1"));
        assert_eq!((b[1].lang.as_str(), b[1].code.as_str()), ("python", "print(1)"));
        assert_eq!((b[2].lang.as_str(), b[2].code.as_str()), ("", "SELECT 2"));
        assert!(fenced_blocks("no code here").is_empty());
    }

    #[test]
    fn json_is_read_leniently() {
        assert_eq!(lenient_json(r#"{"sql": "SELECT 1"}"#), Some(json!({"sql": "SELECT 1"})));
        assert_eq!(lenient_json("```json\n{\"a\": 1}\n```"), Some(json!({"a": 1})));
        assert_eq!(lenient_json("Sure! {\"a\": [1, 2,],} hope it helps"), Some(json!({"a": [1, 2]})));
        assert_eq!(lenient_json(r#"{"s": "a,}"}"#), Some(json!({"s": "a,}"})));
        assert_eq!(lenient_json(""), Some(json!({})));
        assert_eq!(lenient_json("{\"sql\": \"SELECT"), None);
    }
}
