//! Tests of `domains:` checking: every error names its key.

use crate::config::Config;
use crate::config::tests::REFERENCE;

fn err(domains: &str) -> String {
    Config::from_yaml(&format!("{REFERENCE}domains:\n{domains}"))
        .expect_err("must fail")
        .to_string()
}

#[test]
fn valid_domains_load() {
    let c = Config::from_yaml(&format!(
        "{REFERENCE}domains:\n  - name: chat.example.com\n    mappings: [{{path: \"\", stage: prod}}, {{path: \"v1.chat$\", stage: prod}}]\n  - name: \"*.Example.org\"\n    mappings: [{{stage: prod}}]\n"
    ))
    .expect("loads");
    assert_eq!(c.domains.len(), 2);
    assert_eq!(c.domains[1].mappings[0].path, "");
}

#[test]
fn bad_domains_name_their_key() {
    let one =
        |name: &str, mappings: &str| format!("  - name: \"{name}\"\n    mappings: [{mappings}]\n");
    let root = "{stage: prod}";
    let cases = [
        (one("bad_name.example.com", root), "domains[0].name"),
        (one("*.com", root), "domains[0].name"),
        (one("a.*.example.com", root), "domains[0].name"),
        (one("-a.example.com", root), "domains[0].name"),
        (
            one("a.example.com", root) + &one("A.example.com", root),
            "domains[1].name",
        ),
        (one("a.example.com", ""), "domains[0].mappings"),
        (one("a.example.com", "{stage: nope}"), "domains[0].mappings[0].stage"),
        (
            one("a.example.com", "{path: x, stage: prod}, {path: x, stage: prod}"),
            "domains[0].mappings[1].path",
        ),
        (one("a.example.com", "{path: a/b, stage: prod}"), "domains[0].mappings[0].path"),
        (one("a.example.com", "{path: healthz, stage: prod}"), "domains[0].mappings[0].path"),
        (one("a.example.com", "{path: \"..\", stage: prod}"), "domains[0].mappings[0].path"),
        (one("a.example.com", "{path: \"a b\", stage: prod}"), "domains[0].mappings[0].path"),
        (
            one("a.example.com", "{path: x, stage: prod, extra: 1}"),
            "domains[0].mappings[0].extra",
        ),
        (
            "  - name: a.example.com\n    cert_file: /nonexistent.pem\n    mappings: [{stage: prod}]\n".into(),
            "domains[0].key_file",
        ),
        (
            "  - name: a.example.com\n    cert_file: /c.pem\n    key_file: /k.pem\n    mappings: [{stage: prod}]\n".into(),
            "domains[0].cert_file",
        ),
    ];
    for (domains, key) in cases {
        let e = err(&domains);
        assert!(
            e.starts_with(&format!("config key `{key}`")),
            "{domains}: {e}"
        );
    }
}
