//! Request building per action, error reading, and the startup checks of `type: aws`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::*;
use crate::config::Config;

fn params(pairs: &[(&str, &str)]) -> Params {
    Params(
        (pairs.iter())
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn message(payload: &[u8]) -> Message<'_> {
    Message {
        payload,
        binary: false,
        connection_id: "L0SM9cOFvHcCIhw=",
        route_key: "sendmessage",
        request_id: "L0SM9dOFvHcCIhx=",
        stage: "prod",
        event_type: "MESSAGE",
    }
}

fn json_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}

#[test]
fn sqs_send_message_carries_body_and_context_attributes() {
    let p = params(&[("QueueUrl", "http://q/123/chat")]);
    let request =
        build(Action::SqsSendMessage, &p, &message(b"{\"text\":\"hi\"}")).expect("builds");
    assert_eq!(request.content_type, "application/x-amz-json-1.0");
    assert_eq!(request.target, Some("AmazonSQS.SendMessage"));
    let body = json_of(&request);
    assert_eq!(body["QueueUrl"], "http://q/123/chat");
    assert_eq!(body["MessageBody"], "{\"text\":\"hi\"}");
    let attributes = &body["MessageAttributes"];
    assert_eq!(
        attributes["connectionId"],
        json!({"DataType": "String", "StringValue": "L0SM9cOFvHcCIhw="})
    );
    for name in ["routeKey", "requestId", "stage", "eventType"] {
        assert_eq!(attributes[name]["DataType"], "String", "{name}");
    }
    assert!(body.get("MessageGroupId").is_none());

    // FIFO: grouped by connection, deduplicated by request.
    let p = params(&[
        ("QueueUrl", "http://q/123/chat.fifo"),
        ("DelaySeconds", "0"),
    ]);
    let body = json_of(&build(Action::SqsSendMessage, &p, &message(b"x")).expect("builds"));
    assert_eq!(body["MessageGroupId"], "L0SM9cOFvHcCIhw=");
    assert_eq!(body["MessageDeduplicationId"], "L0SM9dOFvHcCIhx=");
    assert_eq!(body["DelaySeconds"], 0);

    // No payload ($connect): SQS refuses empty bodies.
    let body = json_of(&build(Action::SqsSendMessage, &p, &message(b"")).expect("builds"));
    assert_eq!(body["MessageBody"], "{}");
}

#[test]
fn binary_messages_are_base64_and_marked() {
    let p = params(&[("QueueUrl", "http://q/1/b")]);
    let mut msg = message(&[0, 159, 146, 150]);
    msg.binary = true;
    let body = json_of(&build(Action::SqsSendMessage, &p, &msg).expect("builds"));
    assert_eq!(body["MessageBody"], STANDARD.encode([0, 159, 146, 150]));
    assert_eq!(
        body["MessageAttributes"]["isBase64Encoded"]["StringValue"],
        "true"
    );
    let p = params(&[("StreamName", "s")]);
    let body = json_of(&build(Action::KinesisPutRecord, &p, &msg).expect("builds"));
    assert_eq!(body["Data"], STANDARD.encode([0, 159, 146, 150]));
}

#[test]
fn sns_publish_is_a_query_form() {
    let p = params(&[("TopicArn", "arn:aws:sns:us-east-1:123456789012:chat")]);
    let request = build(Action::SnsPublish, &p, &message(b"hi there & more")).expect("builds");
    assert_eq!(request.content_type, action::FORM);
    assert_eq!(request.target, None);
    let form = String::from_utf8(request.body).expect("ASCII");
    assert!(form.starts_with("Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Achat&Message=hi%20there%20%26%20more&"), "{form}");
    assert!(form.contains("MessageAttributes.entry.1.Name=connectionId&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=L0SM9cOFvHcCIhw%3D"), "{form}");
    assert!(
        form.contains("MessageAttributes.entry.5.Name=eventType"),
        "{form}"
    );
}

#[test]
fn kinesis_partitions_by_connection() {
    let p = params(&[("StreamName", "chat")]);
    let request = build(Action::KinesisPutRecord, &p, &message(b"hello")).expect("builds");
    assert_eq!(request.target, Some("Kinesis_20131202.PutRecord"));
    assert_eq!(request.content_type, "application/x-amz-json-1.1");
    let body = json_of(&request);
    assert_eq!(body["Data"], STANDARD.encode("hello"));
    assert_eq!(body["PartitionKey"], "L0SM9cOFvHcCIhw=");
    let p = params(&[("StreamName", "chat"), ("PartitionKey", "all")]);
    let body = json_of(&build(Action::KinesisPutRecord, &p, &message(b"x")).expect("builds"));
    assert_eq!(body["PartitionKey"], "all");
}

#[test]
fn eventbridge_detail_is_the_envelope() {
    let request = build(
        Action::EventsPutEvents,
        &params(&[]),
        &message(b"{\"a\":1}"),
    )
    .expect("builds");
    assert_eq!(request.target, Some("AWSEvents.PutEvents"));
    let body = json_of(&request);
    let entry = &body["Entries"][0];
    assert_eq!(entry["EventBusName"], "default");
    assert_eq!(entry["Source"], "wsgate");
    assert_eq!(entry["DetailType"], "sendmessage");
    let detail: Value =
        serde_json::from_str(entry["Detail"].as_str().expect("string")).expect("JSON");
    assert_eq!(detail["body"], json!({"a": 1}));
    assert_eq!(detail["requestContext"]["connectionId"], "L0SM9cOFvHcCIhw=");
    assert_eq!(detail["isBase64Encoded"], false);
    // Not JSON: a JSON string.
    let body =
        json_of(&build(Action::EventsPutEvents, &params(&[]), &message(b"plain")).expect("builds"));
    let detail: Value =
        serde_json::from_str(body["Entries"][0]["Detail"].as_str().expect("s")).expect("JSON");
    assert_eq!(detail["body"], "plain");
}

#[test]
fn step_functions_and_lambda_take_the_envelope() {
    let p = params(&[("stateMachineArn", "arn:sm"), ("name", "run-1")]);
    let request = build(Action::StatesStartExecution, &p, &message(b"[1,2]")).expect("builds");
    assert_eq!(request.target, Some("AWSStepFunctions.StartExecution"));
    assert_eq!(request.content_type, "application/x-amz-json-1.0");
    let body = json_of(&request);
    assert_eq!(body["stateMachineArn"], "arn:sm");
    assert_eq!(body["name"], "run-1");
    let input: Value = serde_json::from_str(body["input"].as_str().expect("s")).expect("JSON");
    assert_eq!(input["body"], json!([1, 2]));
    assert_eq!(input["requestContext"]["routeKey"], "sendmessage");

    let p = params(&[("FunctionName", "worker")]);
    let request = build(Action::LambdaInvoke, &p, &message(b"")).expect("builds");
    assert_eq!(request.content_type, "application/json");
    assert_eq!(request.target, None);
    let body = json_of(&request);
    assert_eq!(body["body"], Value::Null);
    assert_eq!(body["requestContext"]["eventType"], "MESSAGE");
}

#[test]
fn dynamodb_items_are_typed_and_keyed_by_connection() {
    let p = params(&[("TableName", "messages")]);
    let request = build(
        Action::DynamodbPutItem,
        &p,
        &message(br#"{"id":"m1","n":3.5,"ok":true,"none":null,"tags":["a"],"meta":{"k":1}}"#),
    )
    .expect("builds");
    assert_eq!(request.target, Some("DynamoDB_20120810.PutItem"));
    let body = json_of(&request);
    assert_eq!(body["TableName"], "messages");
    assert_eq!(
        body["Item"],
        json!({
            "id": {"S": "m1"},
            "n": {"N": "3.5"},
            "ok": {"BOOL": true},
            "none": {"NULL": true},
            "tags": {"L": [{"S": "a"}]},
            "meta": {"M": {"k": {"N": "1"}}},
            "connectionId": {"S": "L0SM9cOFvHcCIhw="},
        })
    );
    // A connectionId of the message's own is kept.
    let body = json_of(
        &build(
            Action::DynamodbPutItem,
            &p,
            &message(br#"{"connectionId":"x"}"#),
        )
        .expect("builds"),
    );
    assert_eq!(body["Item"]["connectionId"], json!({"S": "x"}));
    for bad in [&b"[1]"[..], b"text", b"42"] {
        let error = build(Action::DynamodbPutItem, &p, &message(bad)).expect_err("refused");
        assert!(error.contains("JSON object"), "{error}");
    }
}

#[test]
fn missing_parameters_are_named() {
    let error = build(Action::SqsSendMessage, &params(&[]), &message(b"x")).expect_err("refused");
    assert!(error.contains("QueueUrl"), "{error}");
}

#[test]
fn templates_pick_the_protocol() {
    let json = templated(Action::SqsSendMessage, b" {\"QueueUrl\":\"u\"}".to_vec());
    assert_eq!(json.target, Some("AmazonSQS.SendMessage"));
    let form = templated(
        Action::SqsSendMessage,
        b"Action=SendMessage&MessageBody=x".to_vec(),
    );
    assert_eq!((form.content_type, form.target), (action::FORM, None));
    let sns = templated(Action::SnsPublish, b"Action=Publish".to_vec());
    assert_eq!(sns.content_type, action::FORM);
}

#[test]
fn lambda_path_encodes_name_and_qualifier() {
    let p = params(&[
        (
            "FunctionName",
            "arn:aws:lambda:us-east-1:123456789012:function:w",
        ),
        ("Qualifier", "live"),
    ]);
    assert_eq!(
        path(Action::LambdaInvoke, &p).expect("path"),
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aw/invocations?Qualifier=live"
    );
    assert_eq!(path(Action::SqsSendMessage, &p).expect("path"), "/");
}

#[test]
fn error_answers_are_read() {
    let xml = b"<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error></ErrorResponse>";
    assert_eq!(query::xml_error_code(xml).as_deref(), Some("NotFound"));
    assert_eq!(query::xml_error_code(b"{}"), None);
    let failed = Bytes::from_static(
        br#"{"FailedEntryCount":1,"Entries":[{"ErrorCode":"InternalFailure"}]}"#,
    );
    assert_eq!(
        failed_entry(Action::EventsPutEvents, &failed).as_deref(),
        Some("InternalFailure")
    );
    let ok = Bytes::from_static(br#"{"FailedEntryCount":0,"Entries":[{"EventId":"e"}]}"#);
    assert_eq!(failed_entry(Action::EventsPutEvents, &ok), None);
    assert_eq!(failed_entry(Action::SqsSendMessage, &failed), None);
}

#[test]
fn actions_are_checked_against_their_service() {
    assert_eq!(
        Action::find("sqs", "SendMessage"),
        Ok(Action::SqsSendMessage)
    );
    let error = Action::find("sqs", "Publish").expect_err("not SQS's");
    assert!(error.contains("SendMessage"), "{error}");
    let error = Action::find("s3", "PutObject").expect_err("unknown");
    assert!(error.contains("unknown service"), "{error}");
}

/// A config with one `type: aws` route whose integration is `integration` (flow YAML).
fn config(integration: &str, aws: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        queue: http://127.0.0.1:1/123456789012/chat
  routes:
    send:
      integration: {integration}
{aws}"#
    )
}

fn config_error(integration: &str, aws: &str) -> String {
    Config::from_yaml(&config(integration, aws))
        .expect_err("must fail")
        .to_string()
}

#[test]
fn config_loads_and_names_bad_keys() {
    let good = config(
        r#"{ type: aws, service: sqs, action: SendMessage, region: us-east-1, parameters: { QueueUrl: "${stageVariables.queue}" } }"#,
        "",
    );
    let loaded = Config::from_yaml(&good).expect("loads");
    assert!(matches!(
        &loaded.api.routes["send"].integration,
        IntegrationConfig::Aws(aws) if aws.action() == Ok(Action::SqsSendMessage)
    ));
    let region = "aws: { region: us-east-1 }";
    let cases = [
        (
            r#"{ type: aws, service: s3, action: PutObject }"#,
            "integration.service",
        ),
        (
            r#"{ type: aws, service: sqs, action: Publish }"#,
            "integration.action",
        ),
        (
            r#"{ type: aws, service: sqs, action: SendMessage }"#,
            "integration.parameters.QueueUrl",
        ),
        (
            r#"{ type: aws, service: sns, action: Publish }"#,
            "integration.parameters.TopicArn",
        ),
        (
            r#"{ type: aws, service: kinesis, action: PutRecord }"#,
            "integration.parameters.StreamName",
        ),
        (
            r#"{ type: aws, service: states, action: StartExecution }"#,
            "integration.parameters.stateMachineArn",
        ),
        (
            r#"{ type: aws, service: dynamodb, action: PutItem }"#,
            "integration.parameters.TableName",
        ),
        (
            r#"{ type: aws, service: lambda, action: Invoke, request_templates: { $default: "{}" } }"#,
            "integration.parameters.FunctionName",
        ),
        (
            r#"{ type: aws, service: events, action: PutEvents, parameters: { QueueUrl: x } }"#,
            "integration.parameters.QueueUrl",
        ),
        (
            r#"{ type: aws, service: events, action: PutEvents, parameters: { Source: "${stageVariables.nope}" } }"#,
            "integration.parameters.Source",
        ),
        (
            r#"{ type: aws, service: events, action: PutEvents, timeout: 20m }"#,
            "integration.timeout",
        ),
        (
            r#"{ type: aws, service: events, action: PutEvents, endpoint_url: "http://h/path" }"#,
            "integration.endpoint_url",
        ),
        (
            r#"{ type: aws, service: events, action: PutEvents, region: "US" }"#,
            "integration.region",
        ),
    ];
    for (integration, key) in cases {
        let error = config_error(integration, region);
        assert!(
            error.contains(&format!("api.routes.send.{key}")),
            "{integration}: {error}"
        );
    }
    // No region anywhere.
    let error = config_error(r#"{ type: aws, service: events, action: PutEvents }"#, "");
    assert!(
        error.contains("api.routes.send.integration.region"),
        "{error}"
    );
    // A request template owns the body: no QueueUrl needed; EventBridge needs nothing.
    for fine in [
        r#"{ type: aws, service: sqs, action: SendMessage, request_templates: { $default: "{}" } }"#,
        r#"{ type: aws, service: events, action: PutEvents }"#,
    ] {
        Config::from_yaml(&config(fine, region)).expect(fine);
    }
    // Unknown keys are refused by name.
    let error = config_error(
        r#"{ type: aws, service: events, action: PutEvents, uri: x }"#,
        region,
    );
    assert!(error.contains("uri"), "{error}");
}
