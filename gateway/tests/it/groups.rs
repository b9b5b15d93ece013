//! Groups on one node (memory store): joins and leaves through the callback API and the
//! `$connect` answer, group posts with exclusion, broadcasts, listings, AWS-style errors, the
//! slow-member policy and presence events.

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::support::groups::*;
use crate::support::*;

#[tokio::test]
async fn members_get_group_posts_once_and_leave_when_asked_or_closed() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let base = gw.http_url("");
    let client = http();
    let (mut a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (mut b, id_b) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (mut outsider, id_out) = connect_and_id(&backend, &gw.ws_url("/prod")).await;

    assert_eq!(member(&client, &base, &id_a, "room:1", true).await, 204);
    assert_eq!(member(&client, &base, &id_b, "room:1", true).await, 204);
    assert_eq!(
        member(&client, &base, &id_b, "room:1", true).await,
        204,
        "joining twice is harmless"
    );

    let (status, answer) = post_group(&client, &base, "room:1", "hello", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"deliveredLocal": 2, "droppedLocal": 0, "published": false, "remoteNodes": 0})
    );
    assert_eq!(next_text(&mut a).await, "hello");
    assert_eq!(next_text(&mut b).await, "hello");

    // The sender can be left out; binary bodies arrive as binary frames.
    let (_, answer) = post_group(&client, &base, "room:1", "not for a", &id_a).await;
    assert_eq!(answer["deliveredLocal"], 1);
    let r = client
        .post(format!("{base}/prod/%40groups/room:1"))
        .body(vec![0xffu8, 0])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(next_text(&mut b).await, "not for a");
    assert_eq!(
        next_frame(&mut b).await,
        Message::Binary(vec![0xff, 0].into())
    );
    assert_eq!(
        next_frame(&mut a).await,
        Message::Binary(vec![0xff, 0].into())
    );

    // Nothing reached the outsider: the next thing it gets is a direct post.
    post_to(&client, &base, &id_out, "direct").await;
    assert_eq!(next_text(&mut outsider).await, "direct");

    let info = group_info(&client, &base, "room:1", "").await;
    assert_eq!(info["memberCount"], 2);
    assert_eq!(info["group"], "room:1");
    assert_eq!(sorted(&info["members"]), sorted(&json!([id_a, id_b])));
    assert!(info.get("nextToken").is_none());
    assert_eq!(
        connection_groups(&client, &base, &id_a).await,
        json!({"groups": ["room:1"]})
    );

    assert_eq!(member(&client, &base, &id_a, "room:1", false).await, 204);
    assert_eq!(
        member(&client, &base, &id_a, "room:1", false).await,
        204,
        "leaving twice is harmless"
    );
    let (_, answer) = post_group(&client, &base, "room:1", "b only", "").await;
    assert_eq!(answer["deliveredLocal"], 1);
    assert_eq!(next_text(&mut b).await, "b only");
    post_to(&client, &base, &id_a, "direct").await;
    assert_eq!(next_text(&mut a).await, "direct");

    // Closing leaves every group.
    b.close(None).await.expect("close");
    backend.next_to("/disconnect").await;
    eventually_count(&client, &base, "room:1", 0).await;
    let (_, answer) = post_group(&client, &base, "room:1", "nobody", "").await;
    assert_eq!(answer["deliveredLocal"], 0);
}

#[tokio::test]
async fn the_connect_answer_joins_groups_before_the_upgrade() {
    let backend = Backend::start(|r| {
        if r.path == "/connect" {
            let event = r.json();
            let groups = event["queryStringParameters"]["groups"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let answer = json!({
                "statusCode": 200,
                "headers": {"X-Wsgate-Groups": groups},
                "multiValueHeaders": {"x-wsgate-groups": ["news"]},
            });
            return Reply::http(200, &answer.to_string());
        }
        Reply::lambda(200, None)
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let base = gw.http_url("");
    let client = http();
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod?groups=lobby,room:7")).await;
    assert_eq!(
        connection_groups(&client, &base, &id).await,
        json!({"groups": ["lobby", "news", "room:7"]})
    );
    let (_, answer) = post_group(&client, &base, "lobby", "welcome", "").await;
    assert_eq!(answer["deliveredLocal"], 1);
    assert_eq!(next_text(&mut ws).await, "welcome");

    // A name the gateway cannot use is the integration's fault: 502, and the backend that saw
    // the connect sees the disconnect.
    let (status, _) = connect_refused(&gw.ws_url("/prod?groups=bad%20name")).await;
    assert_eq!(status, 502);
    let connect = backend.next_to("/connect").await.json();
    let disconnect = backend.next_to("/disconnect").await.json();
    assert_eq!(
        disconnect["requestContext"]["connectionId"],
        connect["requestContext"]["connectionId"]
    );
}

#[tokio::test]
async fn broadcast_reaches_the_stage_and_connections_are_listed() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&two_stage_config(&backend.url(), "")).await;
    let base = gw.http_url("");
    let client = http();
    let mut prod = Vec::new();
    for _ in 0..3 {
        prod.push(connect_and_id(&backend, &gw.ws_url("/prod")).await);
    }
    let (mut dev, id_dev) = connect_and_id(&backend, &gw.ws_url("/dev")).await;
    let excluded = prod[0].1.clone();

    let r = client
        .post(format!("{base}/prod/@broadcast?exclude={excluded}"))
        .body("to all of prod")
        .send()
        .await
        .expect("broadcast");
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert_eq!(answer["deliveredLocal"], 2);
    for (ws, _) in &mut prod[1..] {
        assert_eq!(next_text(ws).await, "to all of prod");
    }
    for (ws, id) in prod.iter_mut().take(1) {
        post_to(&client, &base, id, "direct").await;
        assert_eq!(next_text(ws).await, "direct");
    }
    post_to_stage(&client, &base, "dev", &id_dev, "direct").await;
    assert_eq!(
        next_text(&mut dev).await,
        "direct",
        "other stages are left alone"
    );

    // Listed two at a time, every connection of the stage once.
    let mut listed = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let query = if token.is_empty() {
            "?maxResults=2".to_string()
        } else {
            format!("?maxResults=2&nextToken={token}")
        };
        let page: Value = client
            .get(format!("{base}/prod/@connections{query}"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(page["connectionCount"], 3);
        listed.extend(page["connections"].as_array().expect("ids").clone());
        match page["nextToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    let expected: Vec<Value> = prod.iter().map(|(_, id)| json!(id)).collect();
    assert_eq!(sorted(&json!(listed)), sorted(&json!(expected)));
}

#[tokio::test]
async fn errors_are_aws_shaped() {
    let backend = Backend::ok().await;
    let extra = "groups:\n  max_groups_per_connection: 2\n";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let base = gw.http_url("");
    let client = http();
    let (_ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;

    let check = |status: u16, name: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.headers()["x-amzn-errortype"], name);
            let body: Value = r.json().await.expect("json");
            assert!(body["message"].is_string(), "{body}");
        }
    };
    let send = |method: reqwest::Method, path: String| {
        client
            .request(method, format!("{base}{path}"))
            .body("x")
            .send()
    };
    use reqwest::Method;
    check(400, "BadRequestException")(
        send(Method::POST, "/prod/@groups/bad%20name".into())
            .await
            .expect("post"),
    )
    .await;
    check(400, "BadRequestException")(
        send(
            Method::PUT,
            format!("/prod/@connections/{id}/groups/a%7Bb%7D"),
        )
        .await
        .expect("put"),
    )
    .await;
    check(403, "ForbiddenException")(
        send(Method::POST, "/nostage/@groups/g".into())
            .await
            .expect("post"),
    )
    .await;
    check(410, "GoneException")(
        send(Method::PUT, "/prod/@connections/nosuchid/groups/g".into())
            .await
            .expect("put"),
    )
    .await;
    check(400, "BadRequestException")(
        send(Method::GET, "/prod/@groups/g?maxResults=0".into())
            .await
            .expect("get"),
    )
    .await;
    let r = client
        .post(format!("{base}/prod/@groups/g"))
        .body(vec![b'x'; 131_073])
        .send()
        .await
        .expect("post");
    check(413, "PayloadTooLargeException")(r).await;

    assert_eq!(member(&client, &base, &id, "one", true).await, 204);
    assert_eq!(member(&client, &base, &id, "two", true).await, 204);
    check(429, "LimitExceededException")(
        send(Method::PUT, format!("/prod/@connections/{id}/groups/three"))
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(
        member(&client, &base, &id, "two", true).await,
        204,
        "re-joining a group it is in is not over the limit"
    );
}

#[tokio::test]
async fn group_endpoints_need_the_callback_credentials() {
    let backend = Backend::ok().await;
    let extra = "callback:\n  auth: {kind: bearer, tokens: [\"0123456789abcdef-token\"]}\n";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let client = http();
    for (method, path) in [
        (reqwest::Method::POST, "/prod/@groups/g"),
        (reqwest::Method::GET, "/prod/@groups/g"),
        (reqwest::Method::POST, "/prod/@broadcast"),
        (reqwest::Method::GET, "/prod/@connections"),
        (reqwest::Method::PUT, "/prod/@connections/x/groups/g"),
    ] {
        let r = client
            .request(method.clone(), gw.http_url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 403, "{method} {path}");
        let r = client
            .request(method.clone(), gw.http_url(path))
            .bearer_auth("0123456789abcdef-token")
            .send()
            .await
            .expect("request");
        assert_ne!(r.status(), 403, "{method} {path} with the token");
    }
}

/// Reads every text frame until the stream ends, in order.
fn reader(mut ws: Ws) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut texts = Vec::new();
        while let Some(Ok(frame)) = ws.next().await {
            match frame {
                Message::Text(text) => texts.push(text.to_string()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        texts
    })
}

#[tokio::test]
async fn a_slow_member_is_closed_and_never_slows_the_others() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  outbound_queue_messages: 4\n  send_timeout: 1s\n  ping_interval: 0\n";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let base = gw.http_url("");
    let client = http();
    // A member that never reads, and two that do.
    let (_slow, id_slow) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (fast_a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (fast_b, id_b) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for id in [&id_slow, &id_a, &id_b] {
        assert_eq!(member(&client, &base, id, "feed", true).await, 204);
    }
    let (readers_a, readers_b) = (reader(fast_a), reader(fast_b));
    let pad = "p".repeat(100_000);
    let mut dropped = 0;
    let total = 300;
    for i in 0..total {
        let (status, answer) = post_group(&client, &base, "feed", &format!("{i}:{pad}"), "").await;
        assert_eq!(status, 200);
        dropped += answer["droppedLocal"].as_u64().expect("count");
    }
    assert!(dropped >= 1, "the member that never reads overflows");
    // The slow member is closed with 1013; the fast ones got everything, in order.
    let disconnect = backend.next_to("/disconnect").await.json();
    assert_eq!(
        disconnect["requestContext"]["connectionId"],
        id_slow.as_str()
    );
    assert_eq!(disconnect["requestContext"]["disconnectStatusCode"], 1013);
    let (_, answer) = post_group(&client, &base, "feed", "end", "").await;
    assert_eq!(
        answer["deliveredLocal"], 2,
        "the slow member left the group"
    );
    for id in [&id_a, &id_b] {
        let r = client
            .delete(format!("{base}/prod/@connections/{id}"))
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), 204);
    }
    for handle in [readers_a, readers_b] {
        let texts = tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("reader ends")
            .expect("reader task");
        assert_eq!(texts.len(), total + 1);
        for (i, text) in texts[..total].iter().enumerate() {
            assert!(
                text.starts_with(&format!("{i}:")),
                "message {i} out of order"
            );
        }
        assert_eq!(texts[total], "end");
    }
}

#[tokio::test]
async fn with_the_drop_policy_a_slow_member_stays_and_only_misses_messages() {
    let backend = Backend::ok().await;
    let extra = "limits:\n  outbound_queue_messages: 2\n  send_timeout: 30s\n  ping_interval: 0\ngroups:\n  slow_member: drop\n";
    let gw = TestGateway::start(&config(&backend.url(), extra)).await;
    let base = gw.http_url("");
    let client = http();
    let (_slow, id_slow) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    assert_eq!(member(&client, &base, &id_slow, "feed", true).await, 204);
    let pad = "p".repeat(100_000);
    let mut dropped = 0;
    for i in 0..300 {
        let (_, answer) = post_group(&client, &base, "feed", &format!("{i}:{pad}"), "").await;
        dropped += answer["droppedLocal"].as_u64().expect("count");
    }
    assert!(dropped >= 1);
    assert_eq!(
        group_info(&client, &base, "feed", "").await["memberCount"],
        1
    );
    assert!(backend.try_next().await.is_none(), "no $disconnect");
}

#[tokio::test]
async fn presence_events_go_to_join_and_leave_routes_for_small_groups() {
    let backend = Backend::ok().await;
    let routes = "    $join:\n      integration: { type: aws_proxy, uri: \"${stageVariables.backend}/presence\" }\n    $leave:\n      integration: { type: http_proxy, uri: \"${stageVariables.backend}/presence-http\" }\n";
    let extra = "groups:\n  presence_max_members: 2\n";
    let gw = TestGateway::start(&config_with_routes(&backend.url(), routes, extra)).await;
    let base = gw.http_url("");
    let client = http();
    let (mut a, id_a) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (_b, id_b) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let (_c, id_c) = connect_and_id(&backend, &gw.ws_url("/prod")).await;

    assert_eq!(member(&client, &base, &id_a, "team", true).await, 204);
    let join = backend.next_to("/presence").await.json();
    assert_eq!(join["requestContext"]["routeKey"], "$join");
    assert_eq!(join["requestContext"]["eventType"], "JOIN");
    assert_eq!(join["requestContext"]["connectionId"], id_a.as_str());
    assert!(join["requestContext"].get("messageId").is_none());
    let body: Value = serde_json::from_str(join["body"].as_str().expect("body")).expect("json");
    assert_eq!(body, json!({"group": "team", "memberCount": 1}));

    assert_eq!(member(&client, &base, &id_b, "team", true).await, 204);
    let join = backend.next_to("/presence").await.json();
    let body: Value = serde_json::from_str(join["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["memberCount"], 2);

    // A third member makes the group too large for presence: no event for it, either way.
    assert_eq!(member(&client, &base, &id_c, "team", true).await, 204);
    assert_eq!(member(&client, &base, &id_c, "team", false).await, 204);
    // Back within the limit: b leaving is reported (the http_proxy route gets the JSON body),
    // and it is the next thing the backend hears.
    assert_eq!(member(&client, &base, &id_b, "team", false).await, 204);
    let leave = backend.next().await;
    assert_eq!(leave.path, "/presence-http");
    assert_eq!(leave.headers["x-wsgate-event-type"], "LEAVE");
    assert_eq!(leave.headers["x-wsgate-route-key"], "$leave");
    assert_eq!(leave.headers["x-wsgate-connection-id"], id_b.as_str());
    assert_eq!(leave.json(), json!({"group": "team", "memberCount": 1}));

    // Closing leaves with an event too.
    a.close(None).await.expect("close");
    let leave = backend.next_to("/presence-http").await;
    assert_eq!(leave.headers["x-wsgate-connection-id"], id_a.as_str());
    assert_eq!(leave.json(), json!({"group": "team", "memberCount": 0}));
}
