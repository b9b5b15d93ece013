//! Property: random templates (built from VTL fragments and stray characters) rendered over
//! random bodies never panic and never write more than the output bound.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use wsgate_vtl::{Input, Limits, RenderError, Template};

const FRAGMENTS: &[&str] = &[
    "$a",
    "$!a",
    "${a}",
    "$a.b",
    "$a[0]",
    "$a.size()",
    "$a.get('k')",
    "$a.substring(1, 3)",
    "$a.split(',')",
    "$a.replaceAll('[a-z]+', '$0$0')",
    "$a.indexOf('x')",
    "$a.put('k', $a)",
    "$a.add($a)",
    "$a.add(1)",
    "#set($a = ",
    "#set($a.k = ",
    "#set($a[0] = ",
    ")",
    "(",
    "#if(",
    "#elseif(",
    "#else",
    "#end",
    "#{end}",
    "#foreach($a in ",
    "#foreach($i in [1..40])",
    "#break",
    "#stop",
    "[1..3]",
    "[",
    "]",
    "{",
    "}",
    "{'k': 1}",
    "'s'",
    "\"$a$a\"",
    "\"x\"",
    "1",
    "-1",
    "2.5",
    "true",
    "null",
    " + ",
    " * ",
    " / ",
    " % ",
    " == ",
    " != ",
    " < ",
    " && ",
    " || ",
    "!",
    " and ",
    " not ",
    ",",
    ":",
    "..",
    "=",
    "$input.json('$')",
    "$input.json('$.a')",
    "$input.path('$')",
    "$input.path('$.a[0]')",
    "$input.path('$..b')",
    "$input.body",
    "$input.params()",
    "$input.params('h')",
    "$context.requestId",
    "$context.identity",
    "$stageVariables.s",
    "$util.escapeJavaScript($a)",
    "$util.parseJson($input.body)",
    "$util.urlEncode($a)",
    "$util.urlDecode($a)",
    "$util.base64Decode($a)",
    "$util.base64Encode($a)",
    "$util.toJson($a)",
    "$foreach.index",
    "$foreach.hasNext",
    "$velocityCount",
    "## c\n",
    "#* c *#",
    "#[[ raw ]]#",
    "\\$a",
    "\\#if",
    "\n",
    " ",
    "\t",
    "é",
    "😀",
    "#",
    "$",
    "\\",
    "\"",
    "'",
    "%",
    "#macro(",
];

fn template() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
            1 => any::<char>().prop_map(|c| c.to_string()),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(r#"{"a":"x,y,z","b":[1,{"b":2}],"c":null}"#.to_string()),
        Just(r#"{"a":[1,2,3]}"#.to_string()),
        any::<String>(),
        "[\\[\\]{}\":,a-c0-9 ]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_templates_never_panic_and_stay_bounded(src in template(), body in body()) {
        let limits = Limits {
            max_output_bytes: 2048,
            max_loop_iterations: 50,
            max_steps: 20_000,
            max_duration: Duration::from_secs(5),
        };
        let ctx = json!({"requestId": "r", "identity": {"sourceIp": "1.2.3.4"}});
        let stage = json!({"s": "v"});
        let params = json!({"header": {"h": "1"}, "querystring": {}, "path": {}});
        let input = Input { body: &body, context: &ctx, stage_variables: &stage, params: &params };
        if let Ok(t) = Template::parse(&src) {
            match t.render(&input, &limits) {
                Ok(out) => prop_assert!(out.len() <= limits.max_output_bytes),
                Err(RenderError::OutputTooLarge { limit }) => prop_assert_eq!(limit, 2048),
                Err(_) => {}
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let e = json!({});
        let input = Input { body: "", context: &e, stage_variables: &e, params: &e };
        if let Ok(t) = Template::parse(&src) {
            let _ = t.render(&input, &Limits::default());
        }
    }
}
