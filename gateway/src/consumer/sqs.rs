//! Amazon SQS source: every node long-polls the queue (`ReceiveMessage`, JSON protocol,
//! SigV4-signed with the `aws:` section's credentials); SQS hides a received message from the
//! other receivers for `visibility_timeout`, so each message is handled by one node. Settled
//! messages are deleted; messages still retrying after `max_deliver` attempts are left for
//! SQS to hand out again (and its redrive policy to dead-letter); messages a stopping node
//! holds are made visible again at once (`ChangeMessageVisibility` 0).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::address::AddressError;
use super::lanes::{Incoming, Lanes, Settle};
use super::{BROKER_TIMEOUT, Context, metrics};
use crate::integration::lambda::{Aws, sign_post};

/// Most messages one `ReceiveMessage` returns (SQS's limit).
const MAX_BATCH: usize = 10;
/// Largest answer read: ten messages of SQS's largest size (1 MiB) plus attributes.
const MAX_ANSWER_BYTES: usize = 12 << 20;
/// The JSON protocol's content type.
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Why an SQS call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqsError {
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("{0}")]
    Sign(String),
    #[error("{action}: {error}")]
    Http {
        action: &'static str,
        error: reqwest::Error,
    },
    #[error("{action}: timed out")]
    Timeout { action: &'static str },
    #[error("{action}: answer over {MAX_ANSWER_BYTES} bytes")]
    TooLarge { action: &'static str },
    #[error("{action}: SQS answered {status} {error_type}: {message}")]
    Refused {
        action: &'static str,
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("{action}: invalid answer: {error}")]
    Answer {
        action: &'static str,
        error: serde_json::Error,
    },
}

/// One queue and how to reach it.
struct Queue {
    client: reqwest::Client,
    aws: Aws,
    /// The URL requests are sent to (and signed for).
    endpoint: String,
    /// The `host` header reqwest sends for `endpoint`.
    host: String,
    region: String,
    queue_url: String,
    wait_time: Duration,
    visibility_timeout: Duration,
}

impl Queue {
    fn new(context: &Context) -> Result<Self, String> {
        let c = &context.config;
        let aws = context.aws.clone();
        let region = (c.sqs_region(aws.region())).ok_or("no region")?;
        let endpoint = format!(
            "{}/",
            c.sqs_endpoint(aws.endpoint_url()).ok_or("no endpoint")?
        );
        let parsed = reqwest::Url::parse(&endpoint).map_err(|e| e.to_string())?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(format!("`{endpoint}` has no host")),
        };
        aws.will_sign();
        Ok(Self {
            client: aws.clients().general.clone(),
            aws,
            endpoint,
            host,
            region,
            queue_url: c.queue_url.clone().unwrap_or_default(),
            wait_time: c.wait_time(),
            visibility_timeout: c.visibility_timeout(),
        })
    }

    /// Calls `action` with `body` within `timeout`; answers the decoded JSON answer.
    async fn call(
        &self,
        action: &'static str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, SqsError> {
        let body = body.to_string().into_bytes();
        let credentials = tokio::time::timeout(BROKER_TIMEOUT, self.aws.credentials())
            .await
            .map_err(|_| SqsError::Credentials("timed out".into()))?
            .map_err(SqsError::Credentials)?;
        let target = format!("AmazonSQS.{action}");
        let signed = [
            ("host", self.host.as_str()),
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", target.as_str()),
        ];
        let lines = sign_post(
            "sqs",
            &self.region,
            &self.endpoint,
            &signed,
            &credentials,
            &body,
            SystemTime::now(),
        )
        .map_err(|e| SqsError::Sign(e.to_string()))?;
        let mut request = (self.client.post(&self.endpoint))
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", target);
        for line in String::from_utf8_lossy(&lines).split("\r\n") {
            if let Some((name, value)) = line.split_once(": ") {
                request = request.header(name, value);
            }
        }
        let exchange = async {
            let response = (request.body(body).send().await)
                .map_err(|error| SqsError::Http { action, error })?;
            let status = response.status().as_u16();
            let mut response = response;
            let mut answer = Vec::new();
            while let Some(chunk) =
                (response.chunk().await).map_err(|error| SqsError::Http { action, error })?
            {
                if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(SqsError::TooLarge { action });
                }
                answer.extend_from_slice(&chunk);
            }
            Ok((status, answer))
        };
        let (status, answer) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SqsError::Timeout { action })??;
        if !(200..300).contains(&status) {
            let error: Value = serde_json::from_slice(&answer).unwrap_or_default();
            let text = |key: &str| error[key].as_str().map(str::to_string);
            // `com.amazonaws.sqs#QueueDoesNotExist` → `QueueDoesNotExist`.
            let error_type = text("__type").unwrap_or_default();
            return Err(SqsError::Refused {
                action,
                status,
                error_type: error_type.rsplit('#').next().unwrap_or_default().into(),
                message: text("message")
                    .or_else(|| text("Message"))
                    .unwrap_or_default(),
            });
        }
        if answer.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer).map_err(|error| SqsError::Answer { action, error })
    }

    /// Up to `count` messages, waiting up to `wait_time` for the first.
    async fn receive(&self, count: usize) -> Result<Vec<Value>, SqsError> {
        let body = json!({
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": count.clamp(1, MAX_BATCH),
            "WaitTimeSeconds": self.wait_time.as_secs(),
            "VisibilityTimeout": self.visibility_timeout.as_secs(),
            "MessageAttributeNames": ["All"],
            "AttributeNames": ["ApproximateReceiveCount"],
        });
        let mut answer = self
            .call("ReceiveMessage", &body, self.wait_time + BROKER_TIMEOUT)
            .await?;
        Ok(match answer["Messages"].take() {
            Value::Array(messages) => messages,
            _ => Vec::new(),
        })
    }

    async fn delete(&self, receipt: &str) -> Result<(), SqsError> {
        let body = json!({"QueueUrl": self.queue_url, "ReceiptHandle": receipt});
        self.call("DeleteMessage", &body, BROKER_TIMEOUT)
            .await
            .map(drop)
    }

    async fn make_visible(&self, receipt: &str) -> Result<(), SqsError> {
        let body =
            json!({"QueueUrl": self.queue_url, "ReceiptHandle": receipt, "VisibilityTimeout": 0});
        self.call("ChangeMessageVisibility", &body, BROKER_TIMEOUT)
            .await
            .map(drop)
    }
}

/// One received message's receipt.
struct Receipt {
    queue: Arc<Queue>,
    handle: String,
    received: u32,
}

#[async_trait::async_trait]
impl Settle for Receipt {
    fn delivered(&self) -> u32 {
        self.received
    }

    async fn ack(self: Box<Self>) {
        if let Err(error) = self.queue.delete(&self.handle).await {
            tracing::debug!(%error, "SQS DeleteMessage failed; the message will be delivered again");
        }
    }

    async fn give_up(self: Box<Self>, _reason: &str) -> bool {
        // Left invisible until `visibility_timeout` ends: SQS then hands it out again, and
        // its redrive policy moves it to the dead-letter queue after `maxReceiveCount`.
        false
    }

    async fn release(self: Box<Self>) {
        if let Err(error) = self.queue.make_visible(&self.handle).await {
            tracing::debug!(%error, "SQS ChangeMessageVisibility failed; the message comes back after visibility_timeout");
        }
    }
}

/// A message attribute as text (`String` and `Number` attributes).
fn attribute(message: &Value, name: &'static str) -> Result<Option<String>, AddressError> {
    let attribute = &message["MessageAttributes"][name];
    if attribute.is_null() {
        return Ok(None);
    }
    match attribute["StringValue"].as_str() {
        Some(value) => Ok(Some(value.to_string())),
        None => Err(AddressError::Header(name)),
    }
}

/// How many times SQS has handed the message out (1 the first time).
fn receive_count(message: &Value) -> u32 {
    (message["Attributes"]["ApproximateReceiveCount"].as_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Hands `messages` to the lanes, one permit each; any beyond the permits is released.
async fn push_all(
    context: &Context,
    queue: &Arc<Queue>,
    lanes: &mut Lanes,
    messages: Vec<Value>,
    permits: Vec<OwnedSemaphorePermit>,
) {
    let mut permits = permits.into_iter();
    for message in messages {
        let Some(handle) = message["ReceiptHandle"].as_str().map(str::to_string) else {
            continue;
        };
        let settle = Box::new(Receipt {
            queue: Arc::clone(queue),
            handle,
            received: receive_count(&message),
        });
        let Some(permit) = permits.next() else {
            settle.release().await;
            continue;
        };
        let body = Bytes::from(message["Body"].as_str().unwrap_or_default().to_owned());
        let parsed = context.parse(|name| attribute(&message, name), body);
        lanes.push(Incoming { parsed, settle }, permit).await;
    }
}

pub(super) async fn run(context: Context) {
    let name = context.config.name.clone();
    let queue = match Queue::new(&context) {
        Ok(queue) => Arc::new(queue),
        Err(error) => {
            tracing::error!(consumer = %name, %error, "SQS consumer not started");
            return;
        }
    };
    let mut lane_tasks = JoinSet::new();
    let mut lanes = Lanes::start(
        &context.config,
        &context.deliverer,
        &context.stop,
        &mut lane_tasks,
    );
    let mut attempt = 0;
    let mut connected = false;
    loop {
        let first = tokio::select! {
            () = context.stop.cancelled() => break,
            permit = lanes.reserve() => permit,
        };
        let mut permits = vec![first];
        while permits.len() < MAX_BATCH {
            match lanes.try_reserve() {
                Some(permit) => permits.push(permit),
                None => break,
            }
        }
        // A receive cut short by the stop leaves what SQS returned hidden until
        // `visibility_timeout` ends; then another node gets it.
        let received = tokio::select! {
            () = context.stop.cancelled() => break,
            received = queue.receive(permits.len()) => received,
        };
        match received {
            Ok(messages) => {
                if !connected {
                    tracing::info!(consumer = %name, queue_url = %queue.queue_url, "consumer connected");
                    metrics::connected(&name, true);
                    connected = true;
                }
                attempt = 0;
                push_all(&context, &queue, &mut lanes, messages, permits).await;
            }
            Err(error) => {
                drop(permits);
                metrics::connected(&name, false);
                connected = false;
                attempt += 1;
                tracing::warn!(consumer = %name, queue_url = %queue.queue_url, %error, attempt, "SQS consumer cannot receive; retrying");
                if !context.pause(attempt).await {
                    break;
                }
            }
        }
    }
    drop(lanes);
    while lane_tasks.join_next().await.is_some() {}
    metrics::connected(&name, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_receive_count() {
        let message = json!({
            "MessageAttributes": {
                "wsgate-connection-id": {"DataType": "String", "StringValue": "abc="},
                "wsgate-group": {"DataType": "Binary", "BinaryValue": "AAE="}
            },
            "Attributes": {"ApproximateReceiveCount": "3"}
        });
        assert_eq!(
            attribute(&message, "wsgate-connection-id"),
            Ok(Some("abc=".into()))
        );
        assert_eq!(attribute(&message, "wsgate-stage"), Ok(None));
        assert_eq!(
            attribute(&message, "wsgate-group"),
            Err(AddressError::Header("wsgate-group"))
        );
        assert_eq!(receive_count(&message), 3);
        assert_eq!(receive_count(&json!({})), 1);
    }
}
