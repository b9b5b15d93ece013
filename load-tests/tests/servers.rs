//! The raw server's protocol and the built-in backend's Lambda-proxy answers.

mod common;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use wsgate_load::client;
use wsgate_load::httpc;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_speaks_the_gateway_protocol() {
    let server = common::raw_server().await;
    let url = server.ws_url("prod");
    let mut ws = client::open(&url, server.addr, None, T)
        .await
        .expect("connects");
    let id = client::whoami(&mut ws, T).await.expect("whoami");

    ws.send(Message::text(r#"{"action":"echo","data":"hi"}"#))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("frame").expect("ok");
    assert_eq!(
        echoed.to_text().expect("text"),
        r#"{"action":"echo","data":"hi"}"#
    );

    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .expect("send");
    let pong = ws.next().await.expect("frame").expect("ok");
    assert_eq!(pong.to_text().expect("text"), r#"{"action":"pong"}"#);

    let auth = server.addr.to_string();
    let (s, _) = httpc::once(
        server.addr,
        &auth,
        Method::POST,
        &format!("/prod/@connections/{id}"),
        Bytes::from_static(b"pushed"),
        T,
    )
    .await
    .expect("post");
    assert_eq!(s, 200);
    let got = ws.next().await.expect("frame").expect("ok");
    assert_eq!(got.to_text().expect("text"), "pushed");

    let (s, _) = httpc::once(
        server.addr,
        &auth,
        Method::POST,
        "/prod/%40connections/999999",
        Bytes::from_static(b"x"),
        T,
    )
    .await
    .expect("post");
    assert_eq!(s, 410);
    let (s, _) = httpc::once(server.addr, &auth, Method::GET, "/healthz", Bytes::new(), T)
        .await
        .expect("get");
    assert_eq!(s, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_answers_lambda_proxy_events() {
    let b = wsgate_load::backend::start("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("backend");
    let auth = b.addr.to_string();
    let post = |path: &'static str, body: &'static str| {
        let auth = auth.clone();
        let addr = b.addr;
        async move {
            httpc::once(
                addr,
                &auth,
                Method::POST,
                path,
                Bytes::from_static(body.as_bytes()),
                T,
            )
            .await
            .expect("post")
        }
    };
    let connect = r#"{"requestContext":{"routeKey":"$connect","eventType":"CONNECT","connectionId":"R1kmxc2VNjMCFIA=","stage":"prod"},"headers":{},"isBase64Encoded":false}"#;
    let (s, body) = post("/connect", connect).await;
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["statusCode"], 200);
    assert!(b.knows("R1kmxc2VNjMCFIA="));
    assert!(v.get("headers").is_none(), "{v}");
    // A `groups` query parameter is joined through the answer's X-Wsgate-Groups header.
    let joining = r#"{"requestContext":{"routeKey":"$connect","eventType":"CONNECT","connectionId":"g1","stage":"prod"},"queryStringParameters":{"groups":"room:1","envelope":"1"}}"#;
    let (_, body) = post("/connect", joining).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["headers"]["X-Wsgate-Groups"], "room:1", "{v}");

    let whoami = r#"{"requestContext":{"routeKey":"whoami","eventType":"MESSAGE","connectionId":"R1kmxc2VNjMCFIA="},"body":"{\"action\":\"whoami\"}","isBase64Encoded":false}"#;
    let (_, body) = post("/whoami", whoami).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let inner = v["body"].as_str().expect("body string");
    assert_eq!(
        client::parse_connection_id(inner).as_deref(),
        Some("R1kmxc2VNjMCFIA=")
    );

    let echo = r#"{"requestContext":{"routeKey":"echo","eventType":"MESSAGE","connectionId":"x"},"body":"{\"action\":\"echo\",\"t\":5}","isBase64Encoded":false}"#;
    let (_, body) = post("/echo", echo).await;
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["body"], r#"{"action":"echo","t":5}"#);

    let (s, body) = post("/echo-http", "raw frame").await;
    assert_eq!((s, body.as_ref()), (200, b"raw frame".as_ref()));

    let disconnect = r#"{"requestContext":{"routeKey":"$disconnect","eventType":"DISCONNECT","connectionId":"R1kmxc2VNjMCFIA="}}"#;
    post("/disconnect", disconnect).await;
    assert!(!b.knows("R1kmxc2VNjMCFIA="));
    let stats = b.stats();
    assert_eq!(stats["connect_events"], 2);
    assert_eq!(stats["whoami_events"], 1);
    assert_eq!(stats["echo_events"], 1);
    assert_eq!(stats["disconnect_events"], 1);
    b.shutdown().await;
}
