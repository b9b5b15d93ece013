//! Identifiers: connection ids (96 random bits from the OS-seeded CSPRNG, 16 URL-safe characters), request and message ids,
//! and node ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}

/// A new connection id: 16 URL-safe characters, unguessable, never starting with `-` or `_`
/// (command-line tools such as the AWS CLI read an argument starting with `-` as an option).
pub fn connection_id() -> String {
    loop {
        let id = random_id();
        if !id.starts_with(['-', '_']) {
            return id;
        }
    }
}

/// A new request id (also used as `extendedRequestId` and `messageId`).
pub(crate) fn request_id() -> String {
    random_id()
}

/// A new `X-Amzn-Trace-Id` value in the X-Ray format AWS puts on CONNECT events:
/// `Root=1-<epoch seconds, 8 hex digits>-<96 random bits, 24 hex digits>`.
pub(crate) fn trace_id() -> String {
    let secs = chrono::Utc::now().timestamp().clamp(0, i64::from(u32::MAX));
    format!(
        "Root=1-{secs:08x}-{}",
        hex::encode(rand::random::<[u8; 12]>())
    )
}

/// A new node id for a process that was not given one.
pub(crate) fn node_id() -> String {
    format!("node-{}", &random_id()[..10])
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn trace_ids_have_the_x_ray_shape() {
        let id = trace_id();
        assert_eq!(id.len(), "Root=1-".len() + 8 + 1 + 24, "{id}");
        assert!(id.starts_with("Root=1-"), "{id}");
        assert_ne!(trace_id(), id);
    }

    #[test]
    fn ids_are_short_url_safe_and_unique() {
        let ids: HashSet<String> = (0..10_000).map(|_| connection_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            assert_eq!(id.len(), 16);
            assert!(!id.starts_with(['-', '_']), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }
}
