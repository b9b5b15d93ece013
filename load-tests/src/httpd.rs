//! Serving HTTP/1.1 (keep-alive) and HTTP/2 with prior knowledge (h2c) on accepted TCP streams
//! with a plain async handler.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use tokio::net::TcpStream;

/// A response with a body.
pub type Resp = Response<Full<Bytes>>;

/// A response with `status` and `body`.
pub fn resp(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// A JSON response.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = resp(status, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Reads a request body of at most `limit` bytes (`None` if larger or broken).
pub async fn read_body(body: Incoming, limit: usize) -> Option<Bytes> {
    Limited::new(body, limit)
        .collect()
        .await
        .ok()
        .map(http_body_util::Collected::to_bytes)
}

/// Serves HTTP/1.1 or h2c (told apart by the connection preface) on `stream` until the peer
/// closes, calling `handler` per request.
pub async fn serve<H, F>(stream: TcpStream, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Send + Clone + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let svc = service_fn(move |req| {
        let h = handler.clone();
        async move { Ok::<_, Infallible>(h(req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    builder.http2().max_concurrent_streams(1024);
    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
}
