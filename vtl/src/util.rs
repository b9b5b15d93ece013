//! `$util`: escapeJavaScript, parseJson, toJson, urlEncode, urlDecode, base64Encode and
//! base64Decode as API Gateway defines them, and the per-render regular expression cache used by
//! the string methods (Rust `regex` syntax standing in for Java's).

use std::fmt::Write as _;

use base64::Engine as _;

use crate::RenderError;
use crate::eval::Renderer;
use crate::value::Value;

/// Bound on a compiled pattern's size (the regex crate refuses larger ones).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn call(r: &mut Renderer<'_>, name: &str, args: &[Value]) -> Result<Value, RenderError> {
    let arg = match args.first() {
        None | Some(Value::Null) => return Ok(Value::Null),
        Some(v) => v,
    };
    if name == "toJson" {
        let s = arg.to_json()?;
        r.charge_bytes(s.len())?;
        return Ok(Value::string(s));
    }
    let owned;
    let s: &str = match arg {
        Value::Str(s) => s,
        other => {
            owned = other.to_java_string()?;
            &owned
        }
    };
    r.charge_bytes(s.len())?;
    let out = match name {
        "escapeJavaScript" => escape_java_script(s),
        "urlEncode" => form_encode(s),
        "urlDecode" => url_decode(s)?,
        "base64Encode" => base64::engine::general_purpose::STANDARD.encode(s.as_bytes()),
        "base64Decode" => {
            let cleaned: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(cleaned.as_bytes())
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.as_bytes())
                })
                .map_err(|e| RenderError::Invalid(format!("$util.base64Decode: {e}")))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "parseJson" => {
            r.charge((s.len() / 256) as u64)?;
            return crate::value::parse_json(s)
                .map_err(|e| RenderError::Invalid(format!("$util.parseJson: {e}")));
        }
        _ => return Ok(Value::Null),
    };
    r.charge_bytes(out.len())?;
    Ok(Value::string(out))
}

/// Apache Commons Lang 2 `StringEscapeUtils.escapeJavaScript`, which API Gateway uses: it also
/// escapes `'` (as `\'`) and `/`, and writes every non-ASCII UTF-16 unit as `\uXXXX`.
/// Java's `URLEncoder.encode(s, "UTF-8")`: letters, digits and `.-*_` stay, a space becomes
/// `+`, every other byte `%XX` (uppercase hex), written byte by byte into one string.
fn form_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

pub(crate) fn escape_java_script(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    // Written in place: a `format!` per character allocated a string each.
                    let _ = write!(out, "\\u{u:04X}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Java's `URLDecoder.decode(s, "UTF-8")`: `+` is a space; a bad `%` escape is an error.
fn url_decode(s: &str) -> Result<String, RenderError> {
    let b = s.as_bytes();
    let mut bytes = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                bytes.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let v = hex
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| RenderError::Invalid("$util.urlDecode: bad % escape".into()))?;
                bytes.push(v);
                i += 3;
            }
            c => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Compiles (or takes from the per-render cache) a pattern. Java-only constructs (look-around,
/// back-references, possessive quantifiers) are refused with an error naming the pattern.
pub(crate) fn regex(r: &mut Renderer<'_>, pat: &str) -> Result<regex::Regex, RenderError> {
    if let Some(re) = r.regexes.get(pat) {
        return Ok(re.clone());
    }
    r.charge(100 + pat.len() as u64)?;
    let re = regex::RegexBuilder::new(pat)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| {
            RenderError::Invalid(format!("unsupported regular expression {pat:?}: {e}"))
        })?;
    if r.regexes.len() >= crate::eval::REGEX_CACHE {
        r.regexes.clear();
    }
    r.regexes.insert(pat.to_string(), re.clone());
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encodes_like_java_url_encoder() {
        // java.net.URLEncoder.encode(s, "UTF-8") of the same strings.
        assert_eq!(form_encode("a b.c-d*e_f~g"), "a+b.c-d*e_f%7Eg");
        assert_eq!(
            form_encode("{\"k\": \"é/&=\"}"),
            "%7B%22k%22%3A+%22%C3%A9%2F%26%3D%22%7D"
        );
        assert_eq!(form_encode(""), "");
    }

    #[test]
    fn escapes_like_commons_lang() {
        assert_eq!(
            escape_java_script("a'b\"c/d\\e\n"),
            "a\\'b\\\"c\\/d\\\\e\\n"
        );
        assert_eq!(
            escape_java_script("é€😀\u{1}"),
            "\\u00E9\\u20AC\\uD83D\\uDE00\\u0001"
        );
    }

    #[test]
    fn url_round_trip() {
        assert_eq!(url_decode("a+b%20c%C3%A9").unwrap(), "a b cé");
        assert!(url_decode("%zz").is_err());
        assert!(url_decode("%").is_err());
    }
}
