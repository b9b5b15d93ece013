//! Group names: 1 to `groups.max_name_bytes` bytes of ASCII letters, digits and `-_.:`, so a
//! name is safe in a URL path, a Redis key hash tag and a channel name without escaping.

use crate::error::CallbackError;

/// Checks a group name (already percent-decoded from the path).
///
/// # Errors
/// [`CallbackError::BadRequest`] naming the rule.
pub(crate) fn validate(name: &str, max_bytes: usize) -> Result<(), CallbackError> {
    if name.is_empty() || name.len() > max_bytes {
        return Err(CallbackError::BadRequest(format!(
            "group names are 1 to {max_bytes} bytes long"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(CallbackError::BadRequest(
            "group names may contain only letters, digits and - _ . :".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "room:42", "chat.lobby-1_x", &"x".repeat(16)] {
            assert_eq!(validate(good, 16), Ok(()), "{good}");
        }
        for bad in [
            "",
            "has space",
            "a/b",
            "{tag}",
            "é",
            "new\nline",
            &"x".repeat(17),
        ] {
            assert!(validate(bad, 16).is_err(), "{bad:?}");
        }
    }
}
