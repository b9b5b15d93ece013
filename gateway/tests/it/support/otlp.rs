//! OTLP receivers started inside a test: OTLP/HTTP (`POST /v1/traces`, protobuf) and OTLP/gRPC
//! (the collector's `TraceService` over h2c), both keeping every span they were sent, flattened,
//! for the test to wait on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::DEADLINE;

/// One exported span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; empty for a root span.
    pub parent_span_id: String,
    /// `service.name` of the exporting gateway.
    pub service: String,
    /// Attributes (strings, and integers as text).
    pub attributes: HashMap<String, String>,
    /// The span's status is an error.
    pub failed: bool,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Store {
    spans: Mutex<Vec<Span>>,
    changed: Notify,
    requests: Mutex<usize>,
}

impl Store {
    fn take(&self, request: ExportTraceServiceRequest) {
        let mut flat = Vec::new();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    flat.push(Span {
                        name: span.name,
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        parent_span_id: hex::encode(&span.parent_span_id),
                        service: service.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
                            .collect(),
                        // STATUS_CODE_ERROR = 2.
                        failed: span.status.is_some_and(|s| s.code == 2),
                    });
                }
            }
        }
        self.spans.lock().expect("spans").extend(flat);
        *self.requests.lock().expect("requests") += 1;
        self.changed.notify_waiters();
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?))
}

fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    /// What `tracing.otlp` should name: `endpoint` and `protocol`.
    pub endpoint: String,
    pub protocol: &'static str,
    store: Arc<Store>,
}

async fn http_export(State(store): State<Arc<Store>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    store.take(request);
    ExportTraceServiceResponse::default().encode_to_vec()
}

struct Grpc(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf).
    pub async fn http() -> Self {
        let store = Arc::new(Store::default());
        let app = Router::new()
            .route("/v1/traces", post(http_export))
            .with_state(Arc::clone(&store));
        let addr = serve(app).await;
        Self {
            addr,
            endpoint: format!("http://{addr}/v1/traces"),
            protocol: "http_protobuf",
            store,
        }
    }

    /// An OTLP/gRPC receiver (h2c).
    pub async fn grpc() -> Self {
        let store = Arc::new(Store::default());
        let app = tonic::service::Routes::new(TraceServiceServer::new(Grpc(Arc::clone(&store))))
            .into_axum_router();
        let addr = serve(app).await;
        Self {
            addr,
            endpoint: format!("http://{addr}"),
            protocol: "grpc",
            store,
        }
    }

    /// The `tracing:` section exporting here as `service` with `extra` lines (indented two
    /// spaces, e.g. a sampler), exporting every 50 ms.
    pub fn config(&self, service: &str, extra: &str) -> String {
        format!(
            "tracing:\n  enabled: true\n  service_name: {service}\n  otlp:\n    endpoint: {}\n    protocol: {}\n    timeout: 2s\n  batch:\n    export_interval: 50ms\n{extra}",
            self.endpoint, self.protocol
        )
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.store.spans.lock().expect("spans").clone()
    }

    /// Export requests received so far.
    pub fn requests(&self) -> usize {
        *self.store.requests.lock().expect("requests")
    }

    /// Waits (bounded) until `done` holds for the spans received, and answers them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let changed = self.store.changed.notified();
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                changed.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: not received; got {:#?}", self.spans()))
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}
