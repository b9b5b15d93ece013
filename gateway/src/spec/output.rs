//! Writing imported configurations and exported documents: YAML through serde-saphyr (or
//! pretty JSON), keys in sorted order so the same input always gives the same bytes.

use super::SpecError;

/// `value` as YAML, after `header` comment lines (each prefixed with `# `).
///
/// # Errors
/// [`SpecError::Write`] when the serializer refuses the value.
pub fn to_yaml(value: &serde_json::Value, header: &[String]) -> Result<String, SpecError> {
    let body = serde_saphyr::to_string(value).map_err(|e| SpecError::Write(e.to_string()))?;
    let mut out = String::new();
    for line in header {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// `value` as pretty JSON with a final newline.
pub(super) fn to_json(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}
