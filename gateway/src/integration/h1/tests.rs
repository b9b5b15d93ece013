//! Unit tests of the lean client against scripted sockets: the retry rule, answer framings the
//! gateway-level tests do not reach, and idle expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the scripted server does with the `n`th request on connection `c`: `Some(bytes)`
/// answers, `None` closes without answering.
type Script = fn(c: usize, n: usize) -> Option<&'static [u8]>;

/// A server reading one request per `\r\n\r\n` (the tests send no bodies).
async fn server(script: Script) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/p", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let c = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut n = 0;
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(read) = stream.read(&mut buf).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..read]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        match script(c, n) {
                            Some(answer) => {
                                if stream.write_all(answer).await.is_err() {
                                    return;
                                }
                            }
                            None => return,
                        }
                        n += 1;
                    }
                }
            });
        }
    });
    (url, accepted)
}

fn endpoint(url: &str, method: &str) -> Endpoint {
    let target = Target::parse(url).expect("valid").expect("http");
    Client::default().endpoint(target, method, &[])
}

async fn call(endpoint: &Endpoint) -> Result<Answer, CallError> {
    endpoint
        .call(&Request::default(), Duration::from_secs(5), 1000, Keep::All)
        .await
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

#[tokio::test]
async fn a_written_request_is_repeated_only_when_the_method_allows() {
    // The first connection answers once, then closes on the second request without answering.
    let script: Script = |c, n| (c > 0 || n == 0).then_some(OK);
    for (method, repeated) in [("GET", true), ("POST", false)] {
        let (url, accepted) = server(script).await;
        let endpoint = endpoint(&url, method);
        assert_eq!(call(&endpoint).await.expect("first").body, "ok");
        let second = call(&endpoint).await;
        if repeated {
            assert_eq!(second.expect("repeated on a new connection").body, "ok");
            assert_eq!(accepted.load(Ordering::SeqCst), 2);
        } else {
            assert!(
                matches!(second, Err(CallError::Failed(H1Error::Closed { .. }))),
                "{second:?}"
            );
        }
    }
}

#[tokio::test]
async fn head_answers_have_no_body_and_smuggling_shapes_end_the_connection() {
    let script: Script = |_, _| {
        Some(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    };
    let (url, accepted) = server(script).await;
    let post = endpoint(&url, "POST");
    for _ in 0..2 {
        assert_eq!(call(&post).await.expect("chunked wins").body, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "not reused after CL+TE");

    let script: Script = |_, _| Some(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
    let (url, accepted) = server(script).await;
    let head = endpoint(&url, "HEAD");
    for _ in 0..2 {
        let answer = call(&head).await.expect("head");
        assert!(answer.body.is_empty());
        assert_eq!(answer.header_value("content-length"), Some("5"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn header_names_are_lowercased_and_odd_values_left_out() {
    let script: Script = |_, _| {
        Some(b"HTTP/1.1 201 Created\r\nX-Mixed-Case: v\r\nX-Bin: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n")
    };
    let (url, _) = server(script).await;
    let answer = call(&endpoint(&url, "POST")).await.expect("answer");
    assert_eq!(answer.status, 201);
    assert_eq!(
        answer.headers,
        [
            ("x-mixed-case".to_string(), "v".to_string()),
            ("content-length".to_string(), "0".to_string())
        ]
    );
}

#[tokio::test]
async fn idle_connections_expire() {
    let (url, accepted) = server(|_, _| Some(OK)).await;
    let endpoint = endpoint(&url, "POST");
    call(&endpoint).await.expect("first");
    assert_eq!(endpoint.idle(), 1);
    // Time is paused only while no socket is awaited.
    tokio::time::pause();
    tokio::time::advance(IDLE_TIMEOUT - Duration::from_secs(1)).await;
    endpoint.pool.sweep();
    assert_eq!(endpoint.idle(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    endpoint.pool.sweep();
    assert_eq!(endpoint.idle(), 0);
    tokio::time::resume();
    call(&endpoint).await.expect("second");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn the_end_of_the_head_carries_the_length() {
    let mut buf = [0u8; 48];
    assert_eq!(end_of_head(&mut buf, 0), b"\r\n");
    assert_eq!(
        end_of_head(&mut buf, usize::MAX),
        format!("content-length: {}\r\n\r\n", usize::MAX).as_bytes()
    );
    assert!(has_header(b"x-a: 1\r\nUser-Agent: me\r\n", "user-agent"));
    assert!(!has_header(b"x-user-agent: me\r\n", "user-agent"));
}

#[test]
fn defaults_give_way_to_forwarded_headers() {
    let endpoint = endpoint("http://u:p@127.0.0.1:1/", "POST");
    assert_eq!(
        endpoint.defaults_not_in(b"user-agent: client\r\n"),
        b"accept: */*\r\nauthorization: Basic dTpw\r\n"
    );
    assert!(
        endpoint
            .defaults_not_in(b"authorization: x\r\nuser-agent: c\r\naccept: y\r\n")
            .is_empty()
    );
}

/// A server that answers each request only once the test lets it (one permit of `release` per
/// answer), counting connections and the requests waiting for an answer.
struct Held {
    url: String,
    accepted: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Held {
    async fn start(release: Arc<tokio::sync::Semaphore>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let held = Self {
            url: format!("http://{}/p", listener.local_addr().expect("addr")),
            accepted: Arc::default(),
            waiting: Arc::default(),
            arrived: Arc::default(),
        };
        let (count, pending, told) = (
            Arc::clone(&held.accepted),
            Arc::clone(&held.waiting),
            Arc::clone(&held.arrived),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                count.fetch_add(1, Ordering::SeqCst);
                let (pending, told, release) = (
                    Arc::clone(&pending),
                    Arc::clone(&told),
                    Arc::clone(&release),
                );
                tokio::spawn(answer_when_released(stream, pending, told, release));
            }
        });
        held
    }

    /// Waits until `n` requests wait for their answer.
    async fn until_waiting(&self, n: usize) {
        loop {
            let told = self.arrived.notified();
            if self.waiting.load(Ordering::SeqCst) >= n {
                return;
            }
            told.await;
        }
    }

    fn endpoint(&self, max_connections: usize) -> Arc<Endpoint> {
        let target = Target::parse(&self.url).expect("valid").expect("http");
        let client = Client::default().with_max_connections(max_connections);
        Arc::new(client.endpoint(target, "POST", &[]))
    }
}

async fn answer_when_released(
    mut stream: tokio::net::TcpStream,
    pending: Arc<AtomicUsize>,
    told: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(read) = stream.read(&mut buf).await else {
            return;
        };
        if read == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..read]);
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            pending.fetch_add(1, Ordering::SeqCst);
            told.notify_waiters();
            let Ok(permit) = release.acquire().await else {
                return;
            };
            permit.forget();
            pending.fetch_sub(1, Ordering::SeqCst);
            if stream.write_all(OK).await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test]
async fn calls_beyond_the_connection_cap_wait_for_a_connection() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Held::start(Arc::clone(&release)).await;
    let endpoint = held.endpoint(2);
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let endpoint = Arc::clone(&endpoint);
            tokio::spawn(async move { call(&endpoint).await })
        })
        .collect();
    // Two calls hold the two connections; the other three wait in the pool, not on new
    // connections.
    held.until_waiting(2).await;
    assert_eq!(endpoint.pool.open(), 2);
    release.add_permits(5);
    for call in calls {
        assert_eq!(call.await.expect("joined").expect("answered").body, "ok");
    }
    assert_eq!(
        held.accepted.load(Ordering::SeqCst),
        2,
        "five calls over two connections"
    );
    assert_eq!(endpoint.idle(), 2);
}

#[tokio::test]
async fn a_call_waiting_for_a_connection_ends_at_its_timeout() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let held = Held::start(Arc::clone(&release)).await;
    let endpoint = held.endpoint(1);
    let first = {
        let endpoint = Arc::clone(&endpoint);
        tokio::spawn(async move { call(&endpoint).await })
    };
    held.until_waiting(1).await;
    // The second call only waits for the pool (no socket), so paused time can run its clock.
    tokio::time::pause();
    let second = endpoint
        .call(&Request::default(), Duration::from_secs(2), 1000, Keep::All)
        .await;
    assert!(matches!(second, Err(CallError::Timeout)), "{second:?}");
    tokio::time::resume();
    release.add_permits(1);
    assert_eq!(first.await.expect("joined").expect("answered").body, "ok");
    assert_eq!(held.accepted.load(Ordering::SeqCst), 1);
}
