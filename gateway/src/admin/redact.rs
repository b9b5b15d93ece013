//! The configuration in force as the admin page shows it: the config's `Debug` text (whose
//! secret fields already print redacted) passed through a second, textual redaction, so that a
//! secret in a place `Debug` does not know of is hidden too: every URL's password
//! (`scheme://user:***@host`), the values of sensitive query parameters, and every quoted
//! value whose field or map key names a secret (`token`, `secret`, `password`, `key`, ...).

use crate::auth::redact::REDACTED;

/// Field or key names (lowercase substrings) whose quoted values are hidden.
const SECRET_NAMES: [&str; 8] = [
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "api_key",
    "apikey",
    "private",
];

/// Names that contain one of [`SECRET_NAMES`] yet hold no secret.
const NOT_SECRET: [&str; 3] = ["_env", "max_token_bytes", "access_key_id"];

/// Query parameters whose values are hidden inside URLs.
const SECRET_PARAMS: [&str; 8] = [
    "token",
    "access_token",
    "password",
    "secret",
    "key",
    "api_key",
    "signature",
    "x-amz-security-token",
];

/// `config`'s text for the admin page.
pub(crate) fn config_text(config: &crate::config::Config) -> String {
    redact_text(&format!("{config:#?}"))
}

/// Applies the textual redaction to `Debug` text, line by line. A secret-named field whose
/// value spans lines (`secret: Some(` ... `),` in pretty `Debug`) has every quoted string
/// inside it hidden.
pub(crate) fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Inside a secret-named value that opened on an earlier line: that line's indent.
    let mut hiding: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let line = redact_urls(line);
        let line = match hiding {
            Some(open) if indent > open => hide_quoted(&line),
            _ => {
                hiding = None;
                let (redacted, opens) = redact_named(&line);
                if opens {
                    hiding = Some(indent);
                }
                redacted
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Whether a field or key name looks like it holds a secret.
fn secret_name(name: &str) -> bool {
    let name = name.trim_matches('"').to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| name.contains(s)) && !NOT_SECRET.iter().any(|s| name.contains(s))
}

/// Every quoted string of `line` (`Debug` escapes its quotes as `\"`) replaced by [`REDACTED`].
fn hide_quoted(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        // Skip the string's contents up to its closing quote.
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        out.push_str(REDACTED);
        out.push('"');
    }
    out
}

/// `name: "value"` or `"name": "value"` (pretty `Debug` of fields and map entries), with a
/// secret-looking name: the value's quoted strings hold [`REDACTED`] instead. Also answers
/// whether such a value opens here and goes on over the next lines.
fn redact_named(line: &str) -> (String, bool) {
    let trimmed = line.trim_start();
    let Some(colon) = trimmed.find(": ") else {
        return (line.to_owned(), false);
    };
    if !secret_name(&trimmed[..colon]) {
        return (line.to_owned(), false);
    }
    let indent = &line[..line.len() - trimmed.len()];
    let value = &trimmed[colon + 2..];
    let opens = value.ends_with(['(', '[', '{']);
    (
        format!("{indent}{}: {}", &trimmed[..colon], hide_quoted(value)),
        opens,
    )
}

/// Every `scheme://user:password@` in `line` with its password hidden, and the values of
/// [`SECRET_PARAMS`] in query strings.
fn redact_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The URL runs to the next quote, space or comma.
        let end = after
            .find(|c: char| c == '"' || c == '\\' || c.is_whitespace() || c == ',')
            .unwrap_or(after.len());
        out.push_str(&redact_url(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// One URL after its `scheme://`.
fn redact_url(url: &str) -> String {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, path) = url.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            let has_password = authority[..at].contains(':');
            if has_password {
                format!("{user}:***{}", &authority[at..])
            } else {
                format!("***{}", &authority[at..])
            }
        }
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = (query.split('&'))
                .map(|pair| match pair.split_once('=') {
                    Some((name, _))
                        if SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str()) =>
                    {
                        format!("{name}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_and_secret_parameters() {
        let text = r#"url: "amqp://guest:hunter2@127.0.0.1:5672/%2f", other: "nats://tok@host:4222", plain: "http://h:1/p?a=1&token=abc&Key=xyz""#;
        let out = redact_text(text);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(!out.contains("tok@"), "{out}");
        assert!(!out.contains("abc") && !out.contains("xyz"), "{out}");
        assert!(out.contains("amqp://guest:***@127.0.0.1:5672/%2f"), "{out}");
        assert!(
            out.contains("http://h:1/p?a=1&token=REDACTED&Key=REDACTED"),
            "{out}"
        );
    }

    #[test]
    fn secret_named_values_are_hidden() {
        let text = "    secret: Some(\n        \"s3cr3t\",\n    ),\n    secret: Some(\"inline\"),\n    \"dbPassword\": \"pw\\\"leak\",\n    secret_env: Some(\"JWT_SECRET\"),\n    max_token_bytes: 4096,\n    name: \"chat\",\n";
        let out = redact_text(text);
        assert!(
            !out.contains("inline") && !out.contains("pw") && !out.contains("leak"),
            "{out}"
        );
        assert!(out.contains("secret_env: Some(\"JWT_SECRET\")"), "{out}");
        assert!(out.contains("name: \"chat\""), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
    }
}
