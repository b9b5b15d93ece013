//! Human durations in configuration: `500ms`, `30s`, `10m`, `2h`, `1d`, or whole seconds as an integer.

use std::borrow::Cow;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serializer, de};

/// Parses `500ms`, `30s`, `10m`, `2h`, `1d` or a bare number of seconds.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return None,
    };
    let secs = value * scale;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The shortest text [`parse`] reads back as `duration`: `0s`, `250ms`, `30s`, `10m`, `2h`,
/// `1d`, or fractional seconds below a millisecond's precision.
pub fn format(duration: Duration) -> String {
    let secs = duration.as_secs();
    let nanos = duration.subsec_nanos();
    if !nanos.is_multiple_of(1_000_000) {
        return format!("{}s", duration.as_secs_f64());
    }
    if nanos != 0 {
        return format!("{}ms", duration.as_millis());
    }
    match secs {
        0 => "0s".to_string(),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Serde adapter writing `Duration` fields as [`format`] text.
///
/// # Errors
/// The serializer's.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// Serde adapter writing `Option<Duration>` fields.
///
/// # Errors
/// The serializer's.
pub fn serialize_opt<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serialize(duration, serializer),
        None => serializer.serialize_none(),
    }
}

/// The JSON Schema of a duration field (`#[schemars(with = "duration::Text")]`).
pub struct Text;

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: 500ms, 30s, 10m, 2h, 1d, or whole seconds as an integer.",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(ms|s|sec|secs|m|min|mins|h|d)?\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Seconds(u64),
    Text(String),
}

/// Serde adapter for `Duration` fields.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(deserializer)? {
        Raw::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Raw::Text(text) => parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid duration `{text}` (expected e.g. 500ms, 30s, 10m, 2h or whole seconds)"
            ))
        }),
    }
}

/// Serde adapter for `Option<Duration>` fields.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_what_parse_reads_back() {
        for text in ["0s", "250ms", "30s", "10m", "2h", "1d", "90s", "1500ms"] {
            let duration = parse(text).expect(text);
            assert_eq!(format(duration), text);
            assert_eq!(parse(&format(duration)), Some(duration));
        }
        let odd = Duration::from_micros(1500);
        assert_eq!(parse(&format(odd)), Some(odd));
    }

    #[test]
    fn parses_units_and_bare_seconds() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse("42"), Some(Duration::from_secs(42)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("10x"), None);
        assert_eq!(parse("s"), None);
        assert_eq!(parse(""), None);
    }
}
