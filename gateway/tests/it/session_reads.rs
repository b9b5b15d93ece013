//! The session reads the client's frames without missing any: frames that arrive together in
//! one TCP segment are all handled (the session waits for the socket to be readable only after a
//! read found nothing), a ping sent with a message is answered, and a connection woken by pushes
//! while its client is silent still reads the client's next message.

use crate::support::raw_ws::RawClient;
use crate::support::*;

fn yaml(backend: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: reads
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ b: "{backend}" }} }} }}
  routes:
    $connect: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/connect" }} }}
    ok: {{ integration: {{ type: mock, response: fine }}, route_response: true }}
"#
    )
}

/// Three messages and a ping written in one segment: three answers and a pong, none held back
/// until more bytes arrive.
#[tokio::test]
async fn frames_arriving_together_are_all_handled() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&yaml(&backend.url())).await;
    let mut raw = RawClient::connect(&gw).await;
    let ok = br#"{"action":"ok"}"#.as_slice();
    raw.send_frames(&[(0x1, ok), (0x1, ok), (0x9, b"p".as_slice()), (0x1, ok)])
        .await;
    let mut answers = 0;
    let mut pongs = 0;
    while answers < 3 || pongs < 1 {
        let frame = raw.frame().await;
        match frame.opcode {
            0x1 => {
                assert_eq!(frame.payload, b"fine");
                answers += 1;
            }
            0xA => {
                assert_eq!(frame.payload, b"p");
                pongs += 1;
            }
            other => panic!("unexpected frame {other:#x}"),
        }
    }
}

/// A client that has been silent while pushes woke its session: its next message is read and
/// answered, and pushes keep arriving after it.
#[tokio::test]
async fn a_session_woken_by_pushes_still_reads_its_client() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&yaml(&backend.url())).await;
    let mut raw = RawClient::connect(&gw).await;
    let event = backend.next_to("/connect").await.json();
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    for round in 0..3 {
        for i in 0..5 {
            let body = format!("push {round}.{i}");
            let r = http()
                .post(gw.http_url(&format!("/prod/@connections/{id}")))
                .body(body.clone())
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), 200);
            assert_eq!(raw.frame().await.payload, body.as_bytes());
        }
        raw.send_text(r#"{"action":"ok"}"#).await;
        assert_eq!(raw.frame().await.payload, b"fine");
    }
}
