//! `type: aws` request building: the simple mapping's body of each action for one chat message
//! (attributes or the envelope, JSON or form encoding; no I/O, no signing).

use wsgate::bench::AwsRequest;

fn main() {
    divan::main();
}

const MESSAGE: &[u8] = br#"{"action":"sendmessage","id":"m1","text":"hello, world","n":3}"#;

/// Service, action and parameters.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const ACTIONS: [Case; 7] = [
    (
        "sqs",
        "SendMessage",
        &[(
            "QueueUrl",
            "https://sqs.us-east-1.amazonaws.com/123456789012/chat",
        )],
    ),
    (
        "sns",
        "Publish",
        &[("TopicArn", "arn:aws:sns:us-east-1:123456789012:chat")],
    ),
    ("kinesis", "PutRecord", &[("StreamName", "chat")]),
    ("events", "PutEvents", &[]),
    (
        "states",
        "StartExecution",
        &[(
            "stateMachineArn",
            "arn:aws:states:us-east-1:123456789012:stateMachine:chat",
        )],
    ),
    ("dynamodb", "PutItem", &[("TableName", "messages")]),
    ("lambda", "Invoke", &[("FunctionName", "worker")]),
];

#[divan::bench(args = ["sqs", "sns", "kinesis", "events", "states", "dynamodb", "lambda"], sample_size = 200)]
fn build(bencher: divan::Bencher<'_, '_>, service: &str) {
    let (_, action, parameters) = ACTIONS
        .iter()
        .find(|(s, _, _)| *s == service)
        .expect("a service of the table");
    let request = AwsRequest::new(service, action, parameters).expect("known action");
    assert!(request.run(MESSAGE).expect("builds") > 0);
    bencher.bench_local(|| request.run(divan::black_box(MESSAGE)));
}
