//! `type: aws` integrations against moto's server on a loopback port: a client's message lands
//! in an SQS queue (with its context attributes), on a Kinesis stream (partitioned by
//! connection), as an EventBridge event (a rule sends it to a queue), as a Step Functions
//! execution's input, as a DynamoDB item, as an SNS notification (a queue is subscribed) and as
//! an asynchronous Lambda invocation; request and response templates; AWS errors as
//! `Internal server error`. Lambda's request is also checked by botocore's signer on a local
//! endpoint.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::boto::run_script;
use crate::support::lambda::*;
use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/aws_services/moto_services.py"
);

/// Runs one command of the moto script.
async fn moto_script(moto: &Moto, args: &[&str]) -> Value {
    let mut all = vec!["--endpoint", moto.url.as_str()];
    all.extend_from_slice(args);
    run_script(SCRIPT, all, None, DEADLINE * 3).await
}

/// `count` messages of the queue at `url`.
async fn receive(moto: &Moto, url: &str, count: usize) -> Vec<Value> {
    let count = count.to_string();
    let got = moto_script(moto, &["receive", "--queue-url", url, "--count", &count]).await;
    let messages = got.as_array().expect("a list").clone();
    assert_eq!(messages.len(), count.parse::<usize>().expect("n"), "{got}");
    messages
}

/// A `mock` route answering the connection's id, so the test knows it.
const WHOAMI: &str = r#"
    whoami:
      integration:
        type: mock
        integration_responses:
          $default: { response_templates: { $default: "$context.connectionId" } }
      route_response: true"#;

async fn connection_id(ws: &mut Ws) -> String {
    send_text(ws, r#"{"action":"whoami"}"#).await;
    next_text(ws).await
}

/// The value of `metric` for `route` of stage `prod` (0 when absent).
async fn metric(gw: &TestGateway, metric: &str, route: &str) -> f64 {
    let text = get_text(&http(), gw.http_url("/metrics")).await;
    (text.lines())
        .find(|l| {
            l.starts_with(metric)
                && l.contains("stage=\"prod\"")
                && l.contains(&format!("route=\"{route}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn messages_land_in_each_service() {
    let moto = Moto::start().await;
    let made = moto_script(&moto, &["setup"]).await;
    let function = moto.function("worker", "live", &[]).await;
    let file = credentials_file();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        queue: {queue}
  routes:
    to_sqs:
      integration: {{ type: aws, service: sqs, action: SendMessage, parameters: {{ QueueUrl: "${{stageVariables.queue}}" }} }}
    to_kinesis:
      integration: {{ type: aws, service: kinesis, action: PutRecord, parameters: {{ StreamName: chat }} }}
    to_events:
      integration: {{ type: aws, service: events, action: PutEvents }}
    to_states:
      integration: {{ type: aws, service: states, action: StartExecution, parameters: {{ stateMachineArn: "{machine}" }} }}
    to_dynamodb:
      integration: {{ type: aws, service: dynamodb, action: PutItem, parameters: {{ TableName: messages }} }}
    to_sns:
      integration: {{ type: aws, service: sns, action: Publish, parameters: {{ TopicArn: "{topic}" }} }}
    to_lambda:
      integration: {{ type: aws, service: lambda, action: Invoke, parameters: {{ FunctionName: "{function}" }} }}
      route_response: true
{WHOAMI}
{aws}  region: {REGION}
"#,
        queue = made["queue_url"].as_str().expect("queue"),
        machine = made["state_machine_arn"].as_str().expect("machine"),
        topic = made["topic_arn"].as_str().expect("topic"),
        aws = aws_section(&moto.url, &file),
    );
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let id = connection_id(&mut ws).await;

    let messages = [
        (
            "to_sqs",
            json!({"action": "to_sqs", "text": "to the queue"}),
        ),
        (
            "to_kinesis",
            json!({"action": "to_kinesis", "text": "to the stream"}),
        ),
        (
            "to_events",
            json!({"action": "to_events", "text": "to the bus"}),
        ),
        (
            "to_states",
            json!({"action": "to_states", "text": "to the machine"}),
        ),
        (
            "to_dynamodb",
            json!({"action": "to_dynamodb", "id": "m1", "text": "to the table", "n": 3}),
        ),
        (
            "to_sns",
            json!({"action": "to_sns", "text": "to the topic"}),
        ),
        (
            "to_lambda",
            json!({"action": "to_lambda", "text": "to the function"}),
        ),
    ];
    for (_, message) in &messages {
        send_text(&mut ws, &message.to_string()).await;
    }
    // Messages of one connection are handled in order: no error frame came before this answer,
    // and the two-way Lambda route sent nothing (an `Event` invocation has no answer).
    assert_eq!(connection_id(&mut ws).await, id);
    for (route, _) in &messages {
        for name in [
            "wsgate_execution_error_total",
            "wsgate_integration_error_total",
        ] {
            assert_eq!(metric(&gw, name, route).await, 0.0, "{name} of {route}");
        }
    }

    // SQS: the message as the body, the context as attributes.
    let sqs = receive(&moto, made["queue_url"].as_str().expect("url"), 1).await;
    assert_eq!(sqs[0]["body"], messages[0].1.to_string());
    let attributes = &sqs[0]["attributes"];
    assert_eq!(attributes["connectionId"], id.as_str());
    assert_eq!(attributes["routeKey"], "to_sqs");
    assert_eq!(attributes["stage"], "prod");
    assert_eq!(attributes["eventType"], "MESSAGE");
    assert!(
        attributes["requestId"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{attributes}"
    );

    // Kinesis: the bytes as data, partitioned by connection.
    let records = moto_script(&moto, &["records", "--stream", "chat"]).await;
    assert_eq!(
        records,
        json!([{"data": base64_of(&messages[1].1.to_string()), "partition_key": id}])
    );

    // EventBridge: the rule on `source: wsgate` sent the event to a queue.
    let events = receive(&moto, made["events_queue_url"].as_str().expect("url"), 1).await;
    let event: Value =
        serde_json::from_str(events[0]["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(event["source"], "wsgate");
    assert_eq!(event["detail-type"], "to_events");
    assert_eq!(event["detail"]["body"], messages[2].1);
    assert_eq!(
        event["detail"]["requestContext"]["connectionId"],
        id.as_str()
    );

    // Step Functions: the envelope as the execution's input.
    let machine = made["state_machine_arn"].as_str().expect("arn");
    let inputs = moto_script(&moto, &["executions", "--arn", machine]).await;
    assert_eq!(inputs[0]["body"], messages[3].1, "{inputs}");
    assert_eq!(inputs[0]["requestContext"]["routeKey"], "to_states");

    // DynamoDB: the object as a typed item, with the connection.
    let items = moto_script(&moto, &["items", "--table", "messages"]).await;
    assert_eq!(
        items,
        json!([{
            "action": {"S": "to_dynamodb"},
            "id": {"S": "m1"},
            "text": {"S": "to the table"},
            "n": {"N": "3"},
            "connectionId": {"S": id},
        }])
    );

    // SNS: the notification in the subscribed queue, with the attributes.
    let sns = receive(&moto, made["sns_queue_url"].as_str().expect("url"), 1).await;
    let notification: Value =
        serde_json::from_str(sns[0]["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(notification["Message"], messages[5].1.to_string());
    assert_eq!(
        notification["MessageAttributes"]["connectionId"]["Value"],
        id.as_str()
    );
    assert_eq!(
        notification["MessageAttributes"]["routeKey"]["Value"],
        "to_sns"
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn templates_replies_errors_and_connect() {
    let moto = Moto::start().await;
    let made = moto_script(&moto, &["setup"]).await;
    let queue = made["queue_url"].as_str().expect("queue");
    let missing = format!("{}/123456789012/no-such-queue", moto.url);
    let file = credentials_file();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables: {{ queue: "{queue}", connect_queue: "{queue}" }}
    broken:
      variables: {{ queue: "{queue}", connect_queue: "{missing}" }}
  routes:
    $connect:
      integration: {{ type: aws, service: sqs, action: SendMessage, parameters: {{ QueueUrl: "${{stageVariables.connect_queue}}" }} }}
    templated:
      integration:
        type: aws
        service: sqs
        action: SendMessage
        request_templates:
          $default: '{{"QueueUrl": "$stageVariables.queue", "MessageBody": "templated $input.path(''$.n'') from $context.routeKey"}}'
    formtemplated:
      integration:
        type: aws
        service: sqs
        action: SendMessage
        request_templates:
          $default: 'Action=SendMessage&QueueUrl=$util.urlEncode($stageVariables.queue)&MessageBody=$util.urlEncode($input.body)'
    reply:
      integration:
        type: aws
        service: sqs
        action: SendMessage
        parameters: {{ QueueUrl: "${{stageVariables.queue}}" }}
        integration_responses:
          $default:
            response_templates: {{ $default: '{{"sent": "$input.path(''$.MessageId'')"}}' }}
      route_response: true
    awsmissing:
      integration: {{ type: aws, service: sqs, action: SendMessage, parameters: {{ QueueUrl: "{missing}" }} }}
      route_response: true
{aws}  region: {REGION}
"#,
        aws = aws_section(&moto.url, &file),
    );
    let gw = TestGateway::start(&yaml).await;

    // `$connect` failing (no such queue) rejects the connection as other integrations do.
    let (status, _) = connect_refused(&gw.ws_url("/broken")).await;
    assert_eq!(status, 502);

    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"templated","n":7}"#).await;
    send_text(&mut ws, r#"{"action":"formtemplated","text":"a & b"}"#).await;
    send_text(&mut ws, r#"{"action":"reply","text":"answer me"}"#).await;
    let reply: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON reply");
    let sent = reply["sent"].as_str().expect("MessageId").to_string();
    assert!(!sent.is_empty());

    send_text(&mut ws, r#"{"action":"awsmissing"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Internal server error", "{frame}");
    for name in [
        "wsgate_execution_error_total",
        "wsgate_integration_error_total",
    ] {
        assert!(metric(&gw, name, "awsmissing").await >= 1.0, "{name}");
    }

    // The queue holds the `$connect` event, the two templated bodies (JSON and SQS's query
    // protocol) and the reply's message.
    let messages = receive(&moto, queue, 4).await;
    let find = |predicate: &dyn Fn(&Value) -> bool| {
        messages
            .iter()
            .find(|m| predicate(m))
            .cloned()
            .unwrap_or_else(|| panic!("{messages:?}"))
    };
    let connect = find(&|m| m["attributes"]["eventType"] == "CONNECT");
    assert_eq!(connect["body"], "{}");
    assert_eq!(connect["attributes"]["routeKey"], "$connect");
    let templated = find(&|m| m["body"] == "templated 7 from templated");
    assert_eq!(
        templated["attributes"],
        json!({}),
        "the template owns the body"
    );
    find(&|m| m["body"] == r#"{"action":"formtemplated","text":"a & b"}"#);
    let replied = find(&|m| m["id"] == sent.as_str());
    assert_eq!(replied["body"], r#"{"action":"reply","text":"answer me"}"#);
}

#[tokio::test]
async fn lambda_event_invocations_are_signed_and_slow_services_time_out() {
    let never = Arc::new(Notify::new());
    let gate = Arc::clone(&never);
    let endpoint = Backend::start(move |r| {
        if r.headers.contains_key("x-amz-target") {
            // The SQS route: an answer that never comes in time.
            Reply {
                hold: Some(Arc::clone(&gate)),
                ..Reply::http(200, "{}")
            }
        } else {
            Reply::http(202, "")
        }
    })
    .await;
    let file = credentials_file();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    work:
      integration:
        type: aws
        service: lambda
        action: Invoke
        endpoint_url: {url}
        parameters: {{ FunctionName: worker, Qualifier: live }}
    slow:
      integration:
        type: aws
        service: sqs
        action: SendMessage
        endpoint_url: {url}
        timeout: 200ms
        parameters: {{ QueueUrl: "{url}/123456789012/slow" }}
      route_response: true
{aws}  region: {REGION}
"#,
        url = endpoint.url(),
        aws = aws_section("http://127.0.0.1:9", &file),
    );
    let gw = TestGateway::start(&yaml).await;
    let mut verifier = Verifier::start(true).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"work","job":1}"#).await;
    let request = endpoint.next().await;
    assert_eq!(request.path, "/2015-03-31/functions/worker/invocations");
    assert_eq!(request.query.as_deref(), Some("Qualifier=live"));
    assert_eq!(request.headers["x-amz-invocation-type"], "Event");
    let payload = request.json();
    assert_eq!(payload["body"], json!({"action": "work", "job": 1}));
    assert_eq!(payload["requestContext"]["routeKey"], "work");
    verifier.assert_signed(&request).await;

    send_text(&mut ws, r#"{"action":"slow"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Endpoint request timed out");
    let request = endpoint.next().await;
    assert_eq!(request.headers["x-amz-target"], "AmazonSQS.SendMessage");
    assert_eq!(
        request.headers["content-type"],
        "application/x-amz-json-1.0"
    );
    never.notify_waiters();
}
