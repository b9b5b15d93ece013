//! IAM callers for the tests: botocore signs upgrade requests (presigned URL or headers) and
//! boto3 calls the callback API, through `tests/sdk/iam_client.py` run with `$WSGATE_PYTHON`.

use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{DEADLINE, Ws};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/iam_client.py");

/// A key pair (and STS session token) to sign with.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub token: Option<&'a str>,
}

/// Runs the script with `args` and the key's options, and returns its JSON line.
async fn run(key: Key<'_>, args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--access-key-id", key.access_key_id]);
    all.extend(["--secret-access-key", key.secret]);
    if let Some(token) = key.token {
        all.extend(["--session-token", token]);
    }
    super::boto::run_script(SCRIPT, all, None, DEADLINE * 6).await
}

/// A signed upgrade request: the URL (with the presigned query) and the headers to add.
#[derive(Debug, Clone)]
pub struct Signed {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// How to sign.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    /// `presign` or `header`.
    pub mode: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub expires_secs: u32,
    /// Seconds added to the signing clock.
    pub date_offset_secs: i64,
}

impl Signing<'static> {
    pub const PRESIGN: Self = Self {
        mode: "presign",
        region: "us-east-1",
        service: "execute-api",
        expires_secs: 300,
        date_offset_secs: 0,
    };
    pub const HEADER: Self = Self {
        mode: "header",
        ..Self::PRESIGN
    };
}

/// Signs `GET http_url` (`http://addr/stage`) with botocore; the URL comes back as `ws://`.
pub async fn sign(http_url: &str, key: Key<'_>, how: Signing<'_>) -> Signed {
    let expires = how.expires_secs.to_string();
    let offset = how.date_offset_secs.to_string();
    let out = run(
        key,
        &[
            "sign",
            "--url",
            http_url,
            "--mode",
            how.mode,
            "--region",
            how.region,
            "--service",
            how.service,
            "--expires",
            &expires,
            &format!("--date-offset={offset}"),
        ],
    )
    .await;
    let url = out["url"]
        .as_str()
        .expect("url")
        .replacen("http://", "ws://", 1);
    let headers = out["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("header value").to_string()))
        .collect();
    Signed { url, headers }
}

/// Runs boto3 `apigatewaymanagementapi` calls (`post:ID`, `get:ID`, `delete:ID`) against
/// `endpoint` (`http://addr/stage`); one result per call.
pub async fn manage(endpoint: &str, key: Key<'_>, ops: &[String]) -> Vec<Value> {
    let mut args = vec!["manage", "--endpoint", endpoint];
    for op in ops {
        args.push("--op");
        args.push(op);
    }
    let out = run(key, &args).await;
    out.as_array().expect("a list of results").clone()
}

/// What a refused upgrade was answered.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub error_type: Option<String>,
    pub body: Value,
}

/// Opens the signed upgrade: the connection, or the refusal.
pub async fn open(signed: &Signed) -> Result<Ws, Refusal> {
    let mut request = signed.url.as_str().into_client_request().expect("request");
    for (name, value) in &signed.headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    match tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(request))
        .await
        .expect("answer within the deadline")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Err(Refusal {
                status: response.status().as_u16(),
                error_type: response
                    .headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: serde_json::from_slice(body).unwrap_or(Value::Null),
            })
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}
