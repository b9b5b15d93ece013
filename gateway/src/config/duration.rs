//! Human durations in configuration: `500ms`, `30s`, `10m`, `2h`, `1d`, or whole seconds as an integer.

use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

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
