//! Identifiers of generated code: words split from route keys, model and API names, cased for
//! each language, and the checks that a property name can be written bare.

/// The alphanumeric words of `text` (`send-message`, `send_message`, `sendMessage` → send,
/// message).
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// `PascalCase` (a leading digit gets `T`; nothing usable gives `T`).
pub(crate) fn pascal(text: &str) -> String {
    let joined: String = words(text).iter().map(|w| capitalized(w)).collect();
    guard(joined, "T")
}

/// `camelCase` (a leading digit gets `route`).
pub(crate) fn camel(text: &str) -> String {
    let words = words(text);
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        if i == 0 {
            out.push_str(&word.to_ascii_lowercase());
        } else {
            out.push_str(&capitalized(word));
        }
    }
    guard(out, "route")
}

/// `snake_case` (a leading digit gets `route_`).
pub(crate) fn snake(text: &str) -> String {
    let joined = words(text)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    guard(joined, "route_")
}

/// `kebab-case`, for package names.
pub(crate) fn kebab(text: &str) -> String {
    let joined = words(text)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("-");
    if joined.is_empty() {
        "api".into()
    } else {
        joined
    }
}

fn guard(text: String, prefix: &str) -> String {
    match text.chars().next() {
        None => prefix.trim_end_matches('_').to_string(),
        Some(c) if c.is_ascii_digit() => format!("{prefix}{text}"),
        Some(_) => text,
    }
}

/// A property name TypeScript accepts unquoted.
pub(crate) fn is_ts_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Python's keywords (and the soft keywords and names a TypedDict class body cannot use).
const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// A name Python accepts as an attribute or parameter.
pub(crate) fn is_py_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !PY_KEYWORDS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        assert_eq!(pascal("send-message"), "SendMessage");
        assert_eq!(pascal("chatMessage"), "ChatMessage");
        assert_eq!(camel("send_message"), "sendMessage");
        assert_eq!(camel("sendmessage"), "sendmessage");
        assert_eq!(snake("getUser"), "get_user");
        assert_eq!(snake("2fa"), "route_2fa");
        assert_eq!(kebab("My Chat"), "my-chat");
        assert!(is_ts_identifier("$ok_1") && !is_ts_identifier("a-b"));
        assert!(!is_py_identifier("class") && is_py_identifier("klass"));
    }
}
