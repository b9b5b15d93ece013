//! The event shapes, field by field, against the AWS captures in the reference.

use serde_json::{Value, json};

use super::*;

fn meta() -> ConnectionMeta {
    ConnectionMeta {
        connection_id: "R1kmxc2VNjMCFIAx".into(),
        stage: "prod".into(),
        api_id: "chat".into(),
        domain_name: "127.0.0.1:8080".into(),
        connected_at_ms: 1_705_751_697_419,
        source_ip: "203.0.113.10".into(),
        user_agent: Some("Mozilla/5.0".into()),
        api_key: None,
        api_key_id: None,
        authorizer: None,
        iam: None,
        cache_request: None,
        canary: false,
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn parse(bytes: Vec<u8>) -> Value {
    serde_json::from_slice(&bytes).expect("valid JSON")
}

#[test]
fn connect_event_shape() {
    let request = ConnectRequest {
        headers: vec![
            ("Host".into(), "127.0.0.1:8080".into()),
            ("X-Multi".into(), "a".into()),
            ("X-Multi".into(), "b".into()),
        ],
        query: vec![
            ("room".into(), "lobby".into()),
            ("room".into(), "two".into()),
        ],
        raw_query: Some("room=lobby&room=two".into()),
    };
    let e = parse(lambda_event(
        &meta(),
        "$connect",
        "REQ",
        &EventKind::Connect(&request),
    ));
    assert_eq!(
        keys(&e),
        [
            "headers",
            "isBase64Encoded",
            "multiValueHeaders",
            "multiValueQueryStringParameters",
            "queryStringParameters",
            "requestContext"
        ]
    );
    assert_eq!(e["headers"]["X-Multi"], "b");
    assert_eq!(e["multiValueHeaders"]["X-Multi"], json!(["a", "b"]));
    assert_eq!(e["queryStringParameters"], json!({"room": "two"}));
    assert_eq!(
        e["multiValueQueryStringParameters"],
        json!({"room": ["lobby", "two"]})
    );
    assert_eq!(e["isBase64Encoded"], false);
    let rc = &e["requestContext"];
    assert_eq!(
        keys(rc),
        [
            "apiId",
            "connectedAt",
            "connectionId",
            "domainName",
            "eventType",
            "extendedRequestId",
            "identity",
            "messageDirection",
            "requestId",
            "requestTime",
            "requestTimeEpoch",
            "routeKey",
            "stage"
        ]
    );
    assert_eq!(rc["routeKey"], "$connect");
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["messageDirection"], "IN");
    assert_eq!(rc["connectedAt"], 1_705_751_697_419_i64);
    assert_eq!(
        rc["identity"],
        json!({"sourceIp": "203.0.113.10", "userAgent": "Mozilla/5.0"})
    );
    let time = rc["requestTime"].as_str().expect("string");
    assert!(
        chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").is_ok(),
        "{time}"
    );
}

#[test]
fn connect_without_query_omits_query_maps() {
    let e = parse(lambda_event(
        &meta(),
        "$connect",
        "R",
        &EventKind::Connect(&ConnectRequest::default()),
    ));
    assert!(e.get("queryStringParameters").is_none());
    assert!(e.get("multiValueQueryStringParameters").is_none());
}

#[test]
fn message_event_shape() {
    let mut m = meta();
    m.authorizer = Some(
        json!({"principalId": "user-42", "tenant": "acme"})
            .as_object()
            .cloned()
            .expect("map"),
    );
    let kind = EventKind::Message {
        body: r#"{"action":"x"}"#,
        raw: b"",
        is_base64: false,
        message_id: "MSG",
    };
    let e = parse(lambda_event(&m, "x", "REQ", &kind));
    assert_eq!(keys(&e), ["body", "isBase64Encoded", "requestContext"]);
    assert_eq!(e["body"], r#"{"action":"x"}"#);
    let rc = &e["requestContext"];
    assert_eq!(rc["messageId"], "MSG");
    assert_eq!(rc["eventType"], "MESSAGE");
    assert_eq!(rc["requestId"], "REQ");
    assert_eq!(rc["extendedRequestId"], "REQ");
    assert_eq!(rc["authorizer"]["principalId"], "user-42");
    assert!(rc.get("disconnectStatusCode").is_none());
}

#[test]
fn disconnect_event_shape() {
    let kind = EventKind::Disconnect {
        status_code: 1001,
        reason: "Going away",
    };
    let e = parse(lambda_event(&meta(), "$disconnect", "REQ", &kind));
    assert_eq!(
        keys(&e),
        [
            "headers",
            "isBase64Encoded",
            "multiValueHeaders",
            "requestContext"
        ]
    );
    assert_eq!(
        e["headers"],
        json!({"Host": "127.0.0.1:8080", "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""})
    );
    assert_eq!(e["multiValueHeaders"]["x-restapi"], json!([""]));
    let rc = &e["requestContext"];
    assert_eq!(rc["disconnectStatusCode"], 1001);
    assert_eq!(rc["disconnectReason"], "Going away");
    assert_eq!(rc["eventType"], "DISCONNECT");
}

#[test]
fn request_time_matches_the_strftime_pattern_across_seconds() {
    for secs in [
        0,
        1_705_751_697,
        1_705_751_698,
        1_705_751_698,
        1_796_494_320,
    ] {
        let expected = chrono::DateTime::from_timestamp(secs, 0)
            .expect("in range")
            .format("%d/%b/%Y:%H:%M:%S %z")
            .to_string();
        assert_eq!(super::RequestTime::at(secs).as_str(), expected);
    }
}

/// An IAM caller's `identity` carries `accessKey`, `accountId`, `caller`, `user` and `userArn`
/// (the `$context.identity.*` variables of WebSocket APIs, reference §6.3) on every event;
/// without one, none of those keys appear.
#[test]
fn iam_identity_fields_on_every_event() {
    let plain = parse(lambda_event(
        &meta(),
        "$default",
        "r",
        &EventKind::Message {
            body: "x",
            raw: b"x",
            is_base64: false,
            message_id: "m",
        },
    ));
    assert_eq!(
        keys(&plain["requestContext"]["identity"]),
        ["sourceIp", "userAgent"]
    );
    let iam = ConnectionMeta {
        iam: Some(Arc::new(CallerIdentity {
            access_key: "ASIAEXAMPLE".into(),
            account_id: "111122223333".into(),
            caller: "AROAEXAMPLE:s".into(),
            user: "AROAEXAMPLE:s".into(),
            user_arn: "arn:aws:sts::111122223333:assumed-role/R/s".into(),
        })),
        ..meta()
    };
    let expected = json!({
        "accessKey": "ASIAEXAMPLE",
        "accountId": "111122223333",
        "caller": "AROAEXAMPLE:s",
        "user": "AROAEXAMPLE:s",
        "userArn": "arn:aws:sts::111122223333:assumed-role/R/s",
        "sourceIp": "203.0.113.10",
        "userAgent": "Mozilla/5.0",
    });
    let request = ConnectRequest::default();
    for kind in [
        EventKind::Connect(&request),
        EventKind::Disconnect {
            status_code: 1000,
            reason: "",
        },
    ] {
        let event = parse(lambda_event(&iam, "$connect", "r", &kind));
        assert_eq!(event["requestContext"]["identity"], expected, "{kind:?}");
    }
}
