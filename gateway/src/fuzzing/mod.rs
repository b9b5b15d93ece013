//! Entry points for the fuzz targets (`gateway/fuzz/`): one thin function per parser that takes
//! outside input, each asserting the properties its target checks. Built only with the
//! `fuzzing` feature; not a stable interface.
//!
//! Every function must return normally for any input: a panic, a hang or an allocation over the
//! fuzzer's limit is a finding (and gets a regression test in the normal test suite).

mod gateway;
mod tokens;

pub use gateway::{frames, upgrade};
pub use tokens::{
    JWT_EC_PUBLIC_PEM, JWT_HS_SECRET, SIGV4_ACCESS_KEY_ID, SIGV4_NOW, SIGV4_SECRET, jwt, sigv4,
};

use bytes::Bytes;
use serde_json::Value;

use crate::bus::wire::Envelope;
use crate::config::Config;
use crate::groups::WireFrame;
use crate::routing::{self, Selected, SelectionExpression};

/// A value kept for the fuzz targets inside a type that derives `Debug`, shown by name only.
pub(crate) struct Opaque<T>(pub(crate) T);

impl<T> std::fmt::Debug for Opaque<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

/// Route selection: `expression` parsed as `api.route_selection_expression` is, then evaluated
/// against `body` as a message is routed. Answers the selected route key when the expression
/// parses. Checks: evaluation is deterministic; a key starting with `$` (other than
/// `$default`) never selects its route; unknown keys fall back to `$default`.
pub fn route_selection(expression: &str, body: &[u8]) -> Option<String> {
    let parsed = SelectionExpression::parse(expression).ok()?;
    let key = parsed.evaluate(body);
    assert_eq!(key, parsed.evaluate(body), "evaluation is deterministic");
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        assert_eq!(
            Some(parsed.evaluate_json(&json)),
            key,
            "a parsed body selects as the raw one"
        );
    }
    let known = key.clone();
    let chosen = routing::select(&parsed, body, |candidate| {
        (candidate == "$default" || Some(candidate) == known.as_deref()).then_some(
            if candidate == "$default" {
                "$default"
            } else {
                "custom"
            },
        )
    });
    match chosen {
        Selected::Route("custom") => {
            let key = key.as_deref().unwrap_or_default();
            assert!(!routing::is_reserved(key), "reserved key {key:?} selected");
            Some(key.to_owned())
        }
        Selected::Route(other) => Some(other.to_owned()),
        Selected::NoRoute => unreachable!("`$default` exists"),
    }
}

/// The node-to-node bus (first byte even) or the group channel (odd) decoding `frame`.
/// Checks: whatever decodes encodes back to a frame that decodes to the same value; the frames
/// of a batch decode on their own without panicking.
pub fn wire(selector: u8, frame: &[u8]) {
    let frame = Bytes::copy_from_slice(frame);
    if selector.is_multiple_of(2) {
        let Ok(envelope) = Envelope::decode(frame) else {
            return;
        };
        if let Envelope::Batch { frames } = &envelope {
            for inner in frames {
                let _ = Envelope::decode(inner.clone());
            }
        }
        if let Ok(encoded) = envelope.encode() {
            assert_eq!(Envelope::decode(encoded).as_ref(), Ok(&envelope));
        }
    } else {
        let Ok(decoded) = WireFrame::decode(frame) else {
            return;
        };
        if let Ok(encoded) = decoded.encode() {
            assert_eq!(WireFrame::decode(encoded).as_ref(), Ok(&decoded));
        }
    }
}

/// The configuration loader: `input` is YAML, optionally followed by a NUL and
/// `WSGATE_…=value` lines applied as environment overrides. Checks: a loaded configuration
/// also passes `wsgate check` (request models compile) or fails it with an error, never a
/// panic.
pub fn config(input: &str) -> bool {
    let (yaml, env) = input.split_once('\0').unwrap_or((input, ""));
    let vars = env.lines().filter_map(|line| {
        let (key, value) = line.split_once('=')?;
        Some((key.to_owned(), value.to_owned()))
    });
    let Ok(config) = Config::from_yaml_with_env(yaml, vars) else {
        return false;
    };
    let _ = crate::validate::Models::compile(&config.api);
    let _ = crate::config::reference::defaults(&config);
    true
}

/// The seed corpora run through their entry points, so a harness mistake shows in the normal
/// test suite (with the `fuzzing` feature) rather than as a fuzzer's first "crash".
#[cfg(test)]
mod tests {
    use std::path::Path;

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read(f).expect("seed"))
            .collect()
    }

    fn split(data: &[u8]) -> (&[u8], &[u8]) {
        match data.iter().position(|&b| b == 0) {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (data, &[]),
        }
    }

    /// Faster than the default `throttling.new_connections` allows: every upgrade still passes.
    #[test]
    fn many_connections_in_a_row() {
        for _ in 0..1500 {
            let _ = super::frames(b"\x00\x81\x82\x11\x22\x46\x0a\x00\x4c\x00\x00\x00\x00");
        }
    }

    #[test]
    fn every_seed_runs_through_its_target() {
        for data in seeds("route_selection") {
            let (expression, body) = split(&data);
            let _ = super::route_selection(&String::from_utf8_lossy(expression), body);
        }
        for data in seeds("wire") {
            if let Some((selector, frame)) = data.split_first() {
                super::wire(*selector, frame);
            }
        }
        let signed: Vec<_> = seeds("sigv4")
            .iter()
            .filter_map(|d| super::sigv4(d))
            .collect();
        assert_eq!(signed.len(), 4, "every SigV4 seed verifies");
        let accepted: Vec<_> = seeds("jwt")
            .iter()
            .filter_map(|d| {
                let (token, jwks) = split(d);
                super::jwt(&String::from_utf8_lossy(token), jwks)
            })
            .collect();
        assert!(accepted.contains(&"alice".to_owned()), "{accepted:?}");
        for data in seeds("config") {
            let _ = super::config(&String::from_utf8_lossy(&data));
        }
        for data in seeds("upgrade") {
            let _ = super::upgrade(&data);
        }
        assert!(super::upgrade(b"").is_empty());
        let mut codes = Vec::new();
        for data in seeds("frames") {
            codes.extend(super::frames(&data));
        }
        assert!(super::frames(b"").is_empty(), "no frames, no close");
        for code in [1000, 1002, 1007, 1009] {
            assert!(codes.contains(&code), "{code} among {codes:?}");
        }
    }
}
