//! Templates in the shapes of AWS's documentation and public samples, written anew for these
//! tests (each cites the source of its shape). Expected outputs are Velocity 1.7's, whitespace
//! included: a directive eats the newline right after it, `#set` also eats its line's
//! indentation, and other directives keep theirs.

use serde_json::{Value, json};
use wsgate_vtl::{Input, Limits, Template};

fn render(src: &str, body: &str, context: &Value, stage: &Value, params: &Value) -> String {
    let input = Input {
        body,
        context,
        stage_variables: stage,
        params,
    };
    let t = Template::parse(src).unwrap_or_else(|e| panic!("{e}"));
    t.render(&input, &Limits::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// Shape: the WebSocket `$connect` request template of the brief, from
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-data-transformations.html
#[test]
fn websocket_connect_template() {
    let src = r#"{"connectionId":"$context.connectionId","domain":"$context.domainName","stage":"$context.stage","params":"$input.params()"}"#;
    let ctx = json!({"connectionId": "L0SM9cOFvHcCIhw=", "domainName": "ws.example.test", "stage": "dev"});
    let params =
        json!({"header": {"Host": "ws.example.test"}, "querystring": {"room": "7"}, "path": {}});
    let out = render(src, "", &ctx, &json!({}), &params);
    assert_eq!(
        out,
        r#"{"connectionId":"L0SM9cOFvHcCIhw=","domain":"ws.example.test","stage":"dev","params":"{path={}, querystring={room=7}, header={Host=ws.example.test}}"}"#
    );
}

/// Shape: "Example 1: Pass multiple $context variables to the integration endpoint",
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-variable-examples.html
#[test]
fn context_variables_renamed() {
    let src = "{\n    \"stage\" : \"$context.stage\",\n    \"request\" : \"$context.requestId\",\n    \"ip\" : \"$context.identity.sourceIp\",\n    \"agent\" : \"$context.identity.userAgent\"\n}";
    let ctx = json!({"stage": "prod", "requestId": "req-9", "identity": {"sourceIp": "198.51.100.4", "userAgent": "curl/8"}});
    let out = render(src, "", &ctx, &json!({}), &json!({}));
    assert_eq!(
        out,
        "{\n    \"stage\" : \"prod\",\n    \"request\" : \"req-9\",\n    \"ip\" : \"198.51.100.4\",\n    \"agent\" : \"curl/8\"\n}"
    );
}

/// Shape: "Example 2: Pass all request parameters to the integration endpoint through a JSON
/// payload" (nested #foreach over `$input.params()` with `#if($foreach.hasNext),#end`), same page
/// as above; the same loop appears in
/// https://github.com/rio-ke/proof-of-concepts/blob/main/aws/sqs-message-post-from-apigateway.md
#[test]
fn all_params_as_json() {
    let src = "\
#set($all = $input.params())
{
\"parameters\" : {
#foreach($kind in $all.keySet())
#set($group = $all.get($kind))
\"$kind\" : {
#foreach($name in $group.keySet())
\"$name\" : \"$util.escapeJavaScript($group.get($name))\"
#if($foreach.hasNext),#end
#end
}
#if($foreach.hasNext),#end
#end
}
}";
    let params =
        json!({"path": {"id": "42"}, "querystring": {"q": "it's"}, "header": {"A": "1", "B": "2"}});
    let out = render(src, "", &json!({}), &json!({}), &params);
    let want = "{\n\"parameters\" : {\n\"path\" : {\n\"id\" : \"42\"\n}\n,\"querystring\" : {\n\"q\" : \"it\\'s\"\n}\n,\"header\" : {\n\"A\" : \"1\"\n,\"B\" : \"2\"\n}\n}\n}";
    assert_eq!(out, want);
}

/// Shape: Kinesis `PutRecords` request template (`#foreach` over `$input.path('$.records')`,
/// `$util.base64Encode`, a property name with a hyphen), from
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/integrating-api-with-aws-services-kinesis.html
#[test]
fn kinesis_put_records_indented() {
    let src = "{
    \"StreamName\": \"$input.path('$.stream')\",
    \"Records\": [
       #foreach($rec in $input.path('$.records'))
          {
            \"Data\": \"$util.base64Encode($rec.payload)\",
            \"PartitionKey\": \"$rec.shard-key\"
          }#if($foreach.hasNext),#end
        #end
    ]
}";
    let body = r#"{"stream":"clicks","records":[{"payload":"a","shard-key":"k1"},{"payload":"bc","shard-key":"k2"}]}"#;
    let out = render(src, body, &json!({}), &json!({}), &json!({}));
    // The indentation of the #foreach line is emitted once, that of the inner `#end` line once per
    // turn (Velocity 1.7 keeps both); the newlines after the directives are eaten.
    let want = "{
    \"StreamName\": \"clicks\",
    \"Records\": [
                 {
            \"Data\": \"YQ==\",
            \"PartitionKey\": \"k1\"
          },                  {
            \"Data\": \"YmM=\",
            \"PartitionKey\": \"k2\"
          }            ]
}";
    assert_eq!(out, want);
    assert_eq!(json_of(&out)["Records"][1]["PartitionKey"], "k2");
}

/// Shape: SQS `SendMessage` request template for an AWS service integration
/// (`Action=SendMessage&MessageBody=$util.urlEncode($input.body)`), as in
/// https://github.com/aws-samples/serverless-patterns (apigw-sqs patterns) and
/// https://github.com/rio-ke/proof-of-concepts/blob/main/aws/sqs-message-post-from-apigateway.md
#[test]
fn sqs_send_message_form() {
    let src = "Action=SendMessage&MessageBody=$util.urlEncode($input.body)&MessageAttribute.1.Name=conn&MessageAttribute.1.Value.StringValue=$context.connectionId&MessageAttribute.1.Value.DataType=String";
    let body = r#"{"action":"send","text":"hi & bye"}"#;
    let out = render(
        src,
        body,
        &json!({"connectionId": "c-1"}),
        &json!({}),
        &json!({}),
    );
    assert_eq!(
        out,
        "Action=SendMessage&MessageBody=%7B%22action%22%3A%22send%22%2C%22text%22%3A%22hi+%26+bye%22%7D&MessageAttribute.1.Name=conn&MessageAttribute.1.Value.StringValue=c-1&MessageAttribute.1.Value.DataType=String"
    );
}

/// Shape: DynamoDB `Query` integration response template (`#set($inputRoot = $input.path('$'))`,
/// `#foreach($elem in $inputRoot.Items) {` ... `}#if($foreach.hasNext),#end`), from
/// https://github.com/jverhoeks/cdkWebsiteTracker/blob/main/src/templates/viewsQuery.ts
#[test]
fn dynamodb_query_response() {
    let src = "#set($root = $input.path('$'))
{
  \"rows\": [
    #foreach($it in $root.Items) {
        \"id\": \"$it.pk.S\",
        \"hits\": $it.hits.N
    }#if($foreach.hasNext),#end
    #end
  ],
  \"count\": $root.Count
}";
    let body = r#"{"Count":2,"Items":[{"pk":{"S":"a"},"hits":{"N":"3"}},{"pk":{"S":"b"},"hits":{"N":"10"}}],"ScannedCount":2}"#;
    let out = render(src, body, &json!({}), &json!({}), &json!({}));
    // `#foreach(...) {`: the directive is followed by text, so its line's newline stays in the
    // body (after ` {`); the `#foreach` line's indentation comes once, the `#end` line's each turn.
    let want = "{
  \"rows\": [
     {
        \"id\": \"a\",
        \"hits\": 3
    },     {
        \"id\": \"b\",
        \"hits\": 10
    }      ],
  \"count\": 2
}";
    assert_eq!(out, want);
    assert_eq!(json_of(&out)["rows"][1]["hits"], 10);
}

/// Shape: DynamoDB `PutItem` request template with `$input.path` values and `$context.requestId`,
/// from https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-dynamo-db.html and
/// aws-samples "apigw-dynamodb" patterns.
#[test]
fn dynamodb_put_item_request() {
    let src = "{
  \"TableName\": \"$stageVariables.table\",
  \"Item\": {
    \"id\": {\"S\": \"$context.requestId\"},
    \"name\": {\"S\": \"$util.escapeJavaScript($input.path('$.name'))\"},
    \"size\": {\"N\": \"$input.path('$.size')\"}
  }
}";
    let body = r#"{"name":"Ada \"the\" first","size":3}"#;
    let out = render(
        src,
        body,
        &json!({"requestId": "r-7"}),
        &json!({"table": "things"}),
        &json!({}),
    );
    let v = json_of(&out);
    assert_eq!(v["Item"]["name"]["S"], "Ada \"the\" first");
    assert_eq!(v["Item"]["size"]["N"], "3");
    assert_eq!(v["TableName"], "things");
}

/// Shape: Step Functions `StartExecution` request template
/// (`"input": "$util.escapeJavaScript($input.json('$'))"`), from
/// https://docs.aws.amazon.com/step-functions/latest/dg/tutorial-api-gateway.html
#[test]
fn step_functions_start_execution() {
    let src = "{\n  \"input\": \"$util.escapeJavaScript($input.json('$'))\",\n  \"stateMachineArn\": \"arn:aws:states:eu-west-1:111122223333:stateMachine:$stageVariables.machine\"\n}";
    let body = r#"{"order":{"id":7,"note":"a/b"}}"#;
    let out = render(
        src,
        body,
        &json!({}),
        &json!({"machine": "Orders"}),
        &json!({}),
    );
    let v = json_of(&out);
    assert_eq!(json_of(v["input"].as_str().unwrap()), json_of(body));
    assert!(v["stateMachineArn"].as_str().unwrap().ends_with(":Orders"));
}

/// Shape: the `$input.path`/`$input.json` examples of the mapping template reference (an object
/// of objects walked with `keySet()`, `size()`, and `$input.json` of a sub-tree), from
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
#[test]
fn reference_page_input_examples() {
    let src = "#set($root = $input.path('$'))
{
  \"count\": $root.things.size(),
  \"ids\": [#foreach($k in $root.things.keySet())\"$k\"#if($foreach.hasNext), #end#end],
  \"raw\": $input.json('$.things')
}";
    let body = r#"{"things":{"b1":{"n":1},"a2":{"n":2},"c3":{}}}"#;
    let out = render(src, body, &json!({}), &json!({}), &json!({}));
    let want = "{
  \"count\": 3,
  \"ids\": [\"b1\", \"a2\", \"c3\"],
  \"raw\": {\"b1\":{\"n\":1},\"a2\":{\"n\":2},\"c3\":{}}
}";
    assert_eq!(out, want);
}

/// Shape: a response template that picks a branch on a missing field and overrides with a
/// default (`#if($input.path('$.x') != $null)` style), common in integration responses; see
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-override-request-response-parameters.html
#[test]
fn null_checks_against_an_undefined_reference() {
    let src = "#set($item = $input.path('$.Item'))
#if($item != $null)
{\"found\": $input.json('$.Item')}
#else
{\"found\": false}
#end";
    assert_eq!(
        render(
            src,
            r#"{"Item":{"k":1}}"#,
            &json!({}),
            &json!({}),
            &json!({})
        ),
        "{\"found\": {\"k\":1}}\n"
    );
    assert_eq!(
        render(src, r#"{"Other":1}"#, &json!({}), &json!({}), &json!({})),
        "{\"found\": false}\n"
    );
}
