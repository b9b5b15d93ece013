//! `wsgate config schema|defaults|reference` from the real binary: the schema is JSON, the
//! defaults of a real configuration load back with `wsgate check` and mask its secrets, and
//! the reference is the committed docs/configuration.md.

use std::process::Command;

fn wsgate(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("WSGATE_CONFIG")
        .output()
        .expect("run wsgate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn config_schema_defaults_and_reference() {
    let (ok, schema, err) = wsgate(&["config", "schema"], &[]);
    assert!(ok, "{err}");
    let schema: serde_json::Value = serde_json::from_str(&schema).expect("JSON");
    assert_eq!(schema["title"], "wsgate configuration (wsgate.yaml)");
    assert!(schema["properties"]["limits"].is_object());

    let (ok, reference, err) = wsgate(&["config", "reference"], &[]);
    assert!(ok, "{err}");
    assert_eq!(
        reference,
        std::fs::read_to_string("../docs/configuration.md").expect("docs/configuration.md")
    );

    // A real configuration with a secret given through the environment.
    let token = "a-bearer-token-nobody-may-see";
    let auth = format!("{{kind: bearer, tokens: [{token}]}}");
    let (ok, defaults, err) = wsgate(
        &[
            "--config",
            "../deploy/compose/wsgate.yaml",
            "config",
            "defaults",
        ],
        &[("WSGATE_CALLBACK__AUTH", &auth)],
    );
    assert!(ok, "{err}");
    assert!(
        !defaults.contains(token),
        "the token is masked:\n{defaults}"
    );
    assert!(
        defaults.contains("- '***'")
            || defaults.contains("- \"***\"")
            || defaults.contains("- ***"),
        "{defaults}"
    );
    assert!(defaults.contains("drain_timeout: 20s"), "{defaults}");
    assert!(
        defaults.contains("idle_timeout: 10m"),
        "every default: {defaults}"
    );

    // What it printed loads (the masked token is 16+ characters? no: it is `***`, so put the
    // real one back first, as an operator would).
    let restored = defaults
        .replace("'***'", token)
        .replace("\"***\"", token)
        .replace("- ***", &format!("- {token}"));
    let dir = std::env::temp_dir().join(format!(
        "wsgate-config-cli-{}",
        wsgate_connection_store::conformance::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("wsgate.yaml");
    std::fs::write(&file, restored).expect("write");
    let (ok, out, err) = wsgate(&["check", "--config", file.to_str().expect("path")], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "the defaults load back: {out}{err}");

    // Without --config: the defaults of a minimal configuration.
    let (ok, minimal, err) = wsgate(&["config", "defaults"], &[]);
    assert!(ok, "{err}");
    assert!(minimal.contains("max_message_bytes: 131072"), "{minimal}");
}

/// The complete configurations shown in the README and docs/gateway.md (the ```yaml blocks that
/// start with `listen:`) load as they are, so the front door never shows a file that fails.
#[test]
fn documented_configurations_load() {
    let mut checked = 0;
    for doc in ["../README.md", "../docs/gateway.md"] {
        let text = std::fs::read_to_string(doc).expect(doc);
        for block in text.split("```yaml\n").skip(1) {
            let yaml = block.split("```").next().expect("block");
            if !yaml.starts_with("listen:") {
                continue;
            }
            if let Err(error) = wsgate::Config::from_yaml(yaml) {
                panic!("{doc}: a documented configuration does not load: {error}\n{yaml}");
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected the README's and docs/gateway.md's examples"
    );
}
