//! Words of questions, names and code as the analyst compares them: one
//! definition for the context's relevance, the definitions a question
//! mentions, and the tables and columns a query names.

/// Lower-case words of three letters or more, plurals folded.
pub(crate) fn words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .map(|w| w.strip_suffix('s').filter(|s| s.len() >= 3).unwrap_or(w).to_string())
        .collect()
}

/// Whether `phrase` occurs in `text` as whole words, ignoring case (`_`
/// joins words, so `tested` is not mentioned by `tested_lt5`).
pub(crate) fn mentions(text: &str, phrase: &str) -> bool {
    let (text, phrase) = (text.to_lowercase(), phrase.trim().to_lowercase());
    if phrase.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(&phrase)
        .any(|(i, _)| !word(text[..i].chars().next_back()) && !word(text[i + phrase.len()..].chars().next()))
}
