//! API Gateway's objects: `$input` (body, json, path, params), `$context`, `$stageVariables` and
//! `$util`, including what a missing path, parameter or variable renders as.

use serde_json::{Value, json};
use wsgate_vtl::{Input, Limits, RenderError, Template};

struct Req {
    body: &'static str,
    context: Value,
    stage: Value,
    params: Value,
}

impl Req {
    fn new(body: &'static str) -> Self {
        Req {
            body,
            context: json!({}),
            stage: json!({}),
            params: json!({}),
        }
    }
    fn render(&self, src: &str) -> Result<String, RenderError> {
        let input = Input {
            body: self.body,
            context: &self.context,
            stage_variables: &self.stage,
            params: &self.params,
        };
        Template::parse(src)
            .unwrap_or_else(|e| panic!("{src:?}: {e}"))
            .render(&input, &Limits::default())
    }
    fn ok(&self, src: &str) -> String {
        self.render(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }
}

const BODY: &str = r#"{"name":"Ada","tags":["x","y"],"nested":{"n":1,"f":2.5,"t":true,"z":null},"items":[{"id":1},{"id":2}]}"#;

#[test]
fn input_json_gives_json_text() {
    let r = Req::new(BODY);
    assert_eq!(r.ok("$input.json('$')"), BODY);
    assert_eq!(r.ok("$input.json('$.name')"), "\"Ada\"");
    assert_eq!(r.ok("$input.json('$.tags')"), r#"["x","y"]"#);
    assert_eq!(
        r.ok("$input.json('$.nested')"),
        r#"{"n":1,"f":2.5,"t":true,"z":null}"#
    );
    assert_eq!(r.ok("$input.json('$.nested.z')"), "null");
    assert_eq!(r.ok("$input.json('$.items[1].id')"), "2");
    assert_eq!(r.ok("$input.json(\"$['nested']['n']\")"), "1");
    assert_eq!(r.ok("$input.json('$.items[*].id')"), "[1,2]");
    assert_eq!(r.ok("$input.json('$..id')"), "[1,2]");
    assert_eq!(r.ok("$input.json('$.tags[-1]')"), "\"y\"");
    // A path that matches nothing renders an empty JSON string.
    assert_eq!(r.ok("$input.json('$.missing')"), "\"\"");
    assert_eq!(r.ok("$input.json('$.name.deeper')"), "\"\"");
}

#[test]
fn input_path_gives_navigable_values() {
    let r = Req::new(BODY);
    assert_eq!(r.ok("$input.path('$.name')"), "Ada");
    assert_eq!(r.ok("$input.path('$.nested.f')"), "2.5");
    assert_eq!(r.ok("$input.path('$.tags').size()"), "2");
    assert_eq!(r.ok("$input.path('$').name.length()"), "3");
    assert_eq!(
        r.ok("#foreach($i in $input.path('$.items'))$i.id#if($foreach.hasNext)-#end#end"),
        "1-2"
    );
    assert_eq!(
        r.ok("$input.path('$.nested')"),
        "{n=1, f=2.5, t=true, z=null}"
    );
    // Missing paths and properties under $input render as nothing (API Gateway), not as source.
    assert_eq!(
        r.ok("[$input.path('$.missing')][$input.path('$').missing]"),
        "[][]"
    );
    assert_eq!(r.ok("#if($input.path('$.missing'))y#{else}n#end"), "n");
    assert_eq!(r.ok("#if($input.path('$.nested.t'))y#{else}n#end"), "y");
}

#[test]
fn the_body_is_parsed_lazily_and_only_when_asked() {
    let r = Req::new("not json");
    assert_eq!(r.ok("$input.body|$input.params('x')"), "not json|");
    let err = r.render("$input.json('$')").unwrap_err();
    assert!(
        matches!(&err, RenderError::Invalid(m) if m.contains("not valid JSON")),
        "{err}"
    );
    let empty = Req::new("");
    assert_eq!(
        empty.ok("[$input.path('$')][$input.json('$.a')][$input.body]"),
        "[][\"\"][]"
    );
    assert!(Req::new(BODY).render("$input.json('$[?(@.a)]')").is_err());
}

#[test]
fn params_search_path_then_querystring_then_header() {
    let mut r = Req::new("");
    r.params = json!({
        "header": {"Host": "h", "id": "from-header", "X-Trace": "t1"},
        "querystring": {"id": "from-query", "q": "a b"},
        "path": {"id": "from-path"}
    });
    assert_eq!(r.ok("$input.params('id')"), "from-path");
    assert_eq!(r.ok("$input.params('q')"), "a b");
    assert_eq!(r.ok("$input.params('Host')"), "h");
    assert_eq!(r.ok("$input.params('x-trace')"), "t1");
    assert_eq!(r.ok("[$input.params('nope')]"), "[]");
    assert_eq!(
        r.ok("$input.params().querystring.q $input.params().get('path').id"),
        "a b from-path"
    );
    assert_eq!(
        r.ok("$input.params()"),
        "{path={id=from-path}, querystring={id=from-query, q=a b}, header={Host=h, X-Trace=t1, id=from-header}}"
    );
    // No params at all still gives the three (empty) maps.
    assert_eq!(
        Req::new("").ok("$input.params()"),
        "{path={}, querystring={}, header={}}"
    );
}

#[test]
fn context_and_stage_variables() {
    let mut r = Req::new("");
    r.context = json!({
        "requestId": "r-1",
        "identity": {"sourceIp": "192.0.2.1"},
        "authorizer": {"principalId": "me", "claims": {"sub": "s-1"}},
        "requestTimeEpoch": 1700000000000u64
    });
    r.stage = json!({"table": "T1"});
    assert_eq!(
        r.ok("$context.requestId $context.identity.sourceIp $context.authorizer.claims.sub"),
        "r-1 192.0.2.1 s-1"
    );
    assert_eq!(
        r.ok("$context.requestTimeEpoch $stageVariables.table ${stageVariables.table}"),
        "1700000000000 T1 T1"
    );
    // Missing context and stage variables render as nothing; user variables as their source.
    assert_eq!(
        r.ok("[$context.nope][$context.identity.nope][$stageVariables.nope][$mine]"),
        "[][][][$mine]"
    );
    assert_eq!(r.ok("#set($context.extra = 'e')$context.extra"), "e");
}

#[test]
fn util_functions() {
    let r = Req::new(r#"{"msg":"He said \"hi\" / it's\n"}"#);
    assert_eq!(
        r.ok("$util.escapeJavaScript($input.path('$.msg'))"),
        r#"He said \"hi\" \/ it\'s\n"#
    );
    assert_eq!(
        r.ok("$util.escapeJavaScript($input.json('$'))"),
        r#"{\"msg\":\"He said \\\"hi\\\" \/ it\'s\\n\"}"#
    );
    assert_eq!(
        r.ok("$util.urlEncode('a b&c=d/é*~')"),
        "a+b%26c%3Dd%2F%C3%A9*%7E"
    );
    assert_eq!(r.ok("$util.urlDecode('a+b%26c%3Dd%2F%C3%A9')"), "a b&c=d/é");
    assert_eq!(
        r.ok("$util.base64Encode('hello wsgate')"),
        "aGVsbG8gd3NnYXRl"
    );
    assert_eq!(
        r.ok("$util.base64Decode('aGVsbG8gd3NnYXRl')"),
        "hello wsgate"
    );
    assert_eq!(
        r.ok("#set($o = $util.parseJson('{\"a\":[1,{\"b\":\"c\"}]}'))$o.a[1].b $o.a.size()"),
        "c 2"
    );
    assert_eq!(
        r.ok("#set($o = $util.parseJson($input.body))$o.msg.length()"),
        "20"
    );
    assert_eq!(
        r.ok("$util.toJson({'a': [1, 'x', null]})"),
        r#"{"a":[1,"x",null]}"#
    );
    assert_eq!(
        r.ok("[$util.escapeJavaScript($nothing)][$util.nope('x')]"),
        "[][]"
    );
    assert!(r.render("$util.base64Decode('!!!')").is_err());
    assert!(r.render("$util.urlDecode('%G1')").is_err());
}

#[test]
fn context_overrides_come_back() {
    let mut r = Req::new("");
    r.context = json!({"requestId": "r", "responseOverride": {"header": {}}});
    let t = Template::parse("#set($context.responseOverride.status = 404)#set($context.responseOverride.header.X-Why = 'gone')ok").unwrap();
    let input = Input {
        body: r.body,
        context: &r.context,
        stage_variables: &r.stage,
        params: &r.params,
    };
    let out = t.render_detailed(&input, &Limits::default()).unwrap();
    assert_eq!(out.output, "ok");
    let ctx = out.context.unwrap();
    assert_eq!(ctx["responseOverride"]["status"], 404);
    assert_eq!(ctx["responseOverride"]["header"]["X-Why"], "gone");
    assert_eq!(ctx["requestId"], "r");
    let plain = Template::parse("no context")
        .unwrap()
        .render_detailed(&input, &Limits::default())
        .unwrap();
    assert_eq!(plain.context, None);
}
