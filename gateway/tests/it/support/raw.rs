//! A raw HTTP/1.1 backend over TCP or a Unix socket, answering with bytes the test scripts
//! (for framings and faults a framework would not produce), counting accepted connections, and
//! closing its idle connections when the test asks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Mutex, broadcast, mpsc};

use super::DEADLINE;

/// One request as received.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    /// Names lowercase.
    pub headers: Vec<(String, String)>,
    /// The header names as they came on the wire, in order.
    pub names: Vec<String>,
    pub body: Vec<u8>,
    /// Index of the connection it came on (0 for the first accepted).
    pub conn: usize,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the backend does with a request.
pub enum Act {
    /// Writes these bytes and waits for the next request.
    Answer(Vec<u8>),
    /// Writes these bytes and closes the connection.
    AnswerAndClose(Vec<u8>),
    /// Never answers (the connection stays open).
    Hang,
}

/// An answer with a Content-Length and `extra` header lines (each ending in CRLF).
pub fn answer(status: u16, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub type RawScript = Arc<dyn Fn(&RawRequest) -> Act + Send + Sync>;

pub struct RawBackend {
    /// `http://127.0.0.1:port` or `unix:/path:` (append the HTTP path).
    pub base: String,
    accepted: Arc<AtomicUsize>,
    requests: Mutex<mpsc::UnboundedReceiver<RawRequest>>,
    close_idle: broadcast::Sender<()>,
    closed: Mutex<mpsc::UnboundedReceiver<usize>>,
    socket: Option<PathBuf>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct Shared {
    script: RawScript,
    accepted: Arc<AtomicUsize>,
    requests: mpsc::UnboundedSender<RawRequest>,
    close_idle: broadcast::Sender<()>,
    closed: mpsc::UnboundedSender<usize>,
}

impl RawBackend {
    /// A backend on 127.0.0.1, port 0.
    pub async fn tcp(script: impl Fn(&RawRequest) -> Act + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (backend, shared) = Self::new(base, None, Arc::new(script));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                spawn_conn(stream, &shared);
            }
        });
        backend
    }

    /// A backend on a Unix socket in the temporary directory.
    pub async fn unix(script: impl Fn(&RawRequest) -> Act + Send + Sync + 'static) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "wsgate-it-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).expect("bind unix socket");
        let base = format!("unix:{}:", path.display());
        let (backend, shared) = Self::new(base, Some(path), Arc::new(script));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                spawn_conn(stream, &shared);
            }
        });
        backend
    }

    fn new(base: String, socket: Option<PathBuf>, script: RawScript) -> (Self, Arc<Shared>) {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (close_idle, _) = broadcast::channel(4);
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            script,
            accepted: Arc::clone(&accepted),
            requests: requests_tx,
            close_idle: close_idle.clone(),
            closed: closed_tx,
        });
        (
            Self {
                base,
                accepted,
                requests: Mutex::new(requests),
                close_idle,
                closed: Mutex::new(closed),
                socket,
            },
            shared,
        )
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The next request received.
    pub async fn next(&self) -> RawRequest {
        tokio::time::timeout(DEADLINE, async { self.requests.lock().await.recv().await })
            .await
            .expect("a request within the deadline")
            .expect("backend open")
    }

    /// Closes every connection waiting for a request; returns once `count` have been closed.
    pub async fn close_idle(&self, count: usize) {
        let _ = self.close_idle.send(());
        let mut closed = self.closed.lock().await;
        for _ in 0..count {
            tokio::time::timeout(DEADLINE, closed.recv())
                .await
                .expect("idle connection closed within the deadline")
                .expect("backend open");
        }
    }
}

fn spawn_conn<S>(stream: S, shared: &Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let index = shared.accepted.fetch_add(1, Ordering::SeqCst);
    let shared = Arc::clone(shared);
    let mut close_idle = shared.close_idle.subscribe();
    tokio::spawn(async move {
        let mut stream = stream;
        let mut buf = BytesMut::with_capacity(8192);
        loop {
            let request = tokio::select! {
                r = read_request(&mut stream, &mut buf, index) => r,
                _ = close_idle.recv(), if buf.is_empty() => {
                    drop(stream);
                    let _ = shared.closed.send(index);
                    return;
                }
            };
            let Some(request) = request else {
                return;
            };
            let act = (shared.script)(&request);
            let _ = shared.requests.send(request);
            match act {
                Act::Answer(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Act::AnswerAndClose(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                    return;
                }
                Act::Hang => std::future::pending::<()>().await,
            }
        }
    });
}

/// Reads one request (Content-Length bodies only, as the gateway sends); `None` at the end.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    conn: usize,
) -> Option<RawRequest> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut slots);
        if let Ok(httparse::Status::Complete(n)) = parsed.parse(buf) {
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let names = parsed.headers.iter().map(|h| h.name.to_string()).collect();
            let method = parsed.method.unwrap_or_default().to_string();
            let target = parsed.path.unwrap_or_default().to_string();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            buf.advance(n);
            while buf.len() < length {
                if stream.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            }
            let body = buf.split_to(length).to_vec();
            return Some(RawRequest {
                method,
                target,
                headers,
                names,
                body,
                conn,
            });
        }
        if stream.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}
