//! Render cost of a typical SQS service-integration template (form-encoded SendMessage with a
//! JSON message built from the body, context and parameters) over a 1 KB JSON body.

use serde_json::json;
use wsgate_vtl::{Input, Limits, Template};

fn main() {
    divan::main();
}

const SQS_TEMPLATE: &str = r##"Action=SendMessage&MessageBody=$util.urlEncode("{
  ""body"": $input.json('$'),
  ""raw"": ""$util.escapeJavaScript($input.body)"",
  ""requestId"": ""$context.requestId"",
  ""connectionId"": ""$context.connectionId"",
  ""stage"": ""$context.stage"",
  ""items"": [#foreach($it in $input.path('$.items'))""$it.sku:$it.qty""#if($foreach.hasNext),#end#end]
}")"##;

fn body_1k() -> String {
    let items: Vec<_> = (0..20)
        .map(|i| json!({"sku": format!("SKU-{i:04}"), "qty": i, "note": "blue / large"}))
        .collect();
    let body = json!({"action": "order", "customer": {"id": "c-123", "name": "Ada Lovelace"}, "items": items});
    let s = body.to_string();
    assert!((900..1300).contains(&s.len()), "body is {} bytes", s.len());
    s
}

#[divan::bench]
fn sqs_template_1k_body(bencher: divan::Bencher) {
    let t = Template::parse(SQS_TEMPLATE).expect("template parses");
    let body = body_1k();
    let ctx = json!({"requestId": "req-1", "connectionId": "L0SM9cOFvHcCIhw=", "stage": "prod"});
    let stage = json!({});
    let params = json!({"header": {}, "querystring": {}, "path": {}});
    let limits = Limits::default();
    bencher.bench_local(|| {
        let input = Input {
            body: &body,
            context: &ctx,
            stage_variables: &stage,
            params: &params,
        };
        t.render(divan::black_box(&input), &limits)
            .expect("renders")
    });
}

#[divan::bench]
fn parse_sqs_template() -> Template {
    Template::parse(divan::black_box(SQS_TEMPLATE)).expect("template parses")
}
