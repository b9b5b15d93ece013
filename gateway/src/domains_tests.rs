//! Tests of the host and path rewrite of custom domains.

use super::*;
use crate::config::MappingConfig;

fn domains() -> Domains {
    let domain = |name: &str, mappings: &[(&str, &str)]| DomainConfig {
        name: name.into(),
        cert_file: None,
        key_file: None,
        mappings: (mappings.iter())
            .map(|(path, stage)| MappingConfig {
                path: (*path).into(),
                stage: (*stage).into(),
            })
            .collect(),
    };
    Domains::new(&[
        domain("Chat.Example.com", &[("", "prod")]),
        domain("api.example.com", &[("chat", "prod"), ("v2.beta", "beta")]),
        domain("*.tenants.example.com", &[("", "beta")]),
    ])
}

/// The path (and query) the routers see, the domain recorded, or the refusal.
fn route(host: &str, target: &str) -> Result<(String, Option<String>), CallbackError> {
    let mut request = Request::builder()
        .uri(target)
        .header(header::HOST, host)
        .body(())
        .expect("request");
    domains().route(&mut request)?;
    let domain = (request.extensions().get::<CustomDomain>()).map(|d| d.0.to_string());
    Ok((request.uri().to_string(), domain))
}

fn ok(path: &str, domain: &str) -> Result<(String, Option<String>), CallbackError> {
    Ok((path.into(), Some(domain.into())))
}

#[test]
fn root_mapping_serves_every_path_under_the_stage() {
    let chat = "chat.example.com";
    assert_eq!(route("chat.example.com", "/"), ok("/prod/", chat));
    assert_eq!(
        route("CHAT.example.com:8443", "/?a=1"),
        ok("/prod/?a=1", chat)
    );
    assert_eq!(
        route("chat.example.com", "/@connections/abc%3D"),
        ok("/prod/@connections/abc%3D", chat)
    );
    assert_eq!(
        route("chat.example.com", "/%40connections/abc"),
        ok("/prod/%40connections/abc", chat)
    );
}

#[test]
fn path_mappings_replace_their_segment_with_the_stage() {
    let api = "api.example.com";
    assert_eq!(route("api.example.com", "/chat"), ok("/prod", api));
    assert_eq!(route("api.example.com", "/chat/"), ok("/prod/", api));
    assert_eq!(
        route("api.example.com", "/chat/@connections/x?code=4000"),
        ok("/prod/@connections/x?code=4000", api)
    );
    assert_eq!(route("api.example.com", "/v2%2Ebeta"), ok("/beta", api));
}

#[test]
fn unmapped_paths_are_forbidden_and_own_paths_pass() {
    assert_eq!(
        route("api.example.com", "/other"),
        Err(CallbackError::UnknownStage)
    );
    assert_eq!(
        route("api.example.com", "/"),
        Err(CallbackError::UnknownStage)
    );
    assert_eq!(
        route("api.example.com", "/healthz"),
        Ok(("/healthz".into(), None))
    );
    assert_eq!(
        route("chat.example.com", "/metrics"),
        Ok(("/metrics".into(), None))
    );
}

#[test]
fn wildcards_cover_one_label_and_other_hosts_pass() {
    assert_eq!(
        route("a.tenants.example.com", "/"),
        ok("/beta/", "a.tenants.example.com")
    );
    assert_eq!(
        route("a.b.tenants.example.com", "/prod"),
        Ok(("/prod".into(), None))
    );
    assert_eq!(
        route("tenants.example.com", "/prod"),
        Ok(("/prod".into(), None))
    );
    assert_eq!(route("127.0.0.1:8080", "/prod"), Ok(("/prod".into(), None)));
    assert_eq!(route("[::1]:8080", "/prod"), Ok(("/prod".into(), None)));
}
