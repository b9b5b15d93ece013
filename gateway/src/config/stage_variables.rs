//! `${stageVariables.name}` substitution in URIs, checked at startup for every stage and
//! applied when integrations and authorizers are built.

use std::collections::BTreeMap;

/// Replaces `${stageVariables.name}` in `template`; `Err(name)` for a variable the stage lacks.
///
/// # Errors
/// The name of the first missing variable.
pub fn substitute_stage_variables(
    template: &str,
    variables: &BTreeMap<String, String>,
) -> Result<String, String> {
    const OPEN: &str = "${stageVariables.";
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value = variables.get(name).ok_or_else(|| name.to_string())?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_variables_substitute() {
        let vars: BTreeMap<String, String> =
            [("backend".to_string(), "http://h:1".to_string())].into();
        assert_eq!(
            substitute_stage_variables("${stageVariables.backend}/connect", &vars),
            Ok("http://h:1/connect".to_string())
        );
        assert_eq!(
            substitute_stage_variables("http://x/y", &vars),
            Ok("http://x/y".to_string())
        );
        assert_eq!(
            substitute_stage_variables("${stageVariables.other}/x", &vars),
            Err("other".to_string())
        );
    }
}
