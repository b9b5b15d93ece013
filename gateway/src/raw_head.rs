//! Header names as the client spelled them (`HeaderAuth1`, `X-Custom-MiXed`), which Amazon API
//! Gateway passes through to CONNECT events and authorizer events but hyper lowercases.
//!
//! hyper 1.x can keep the original case on HTTP/1 (`http1::Builder::preserve_header_case`), but
//! the map it stores it in (`hyper::ext::HeaderCaseMap`) is crate-private: nothing outside hyper
//! can read it. So the request head is captured on its way in instead: [`Tap`] wraps the
//! connection's stream and copies the bytes hyper reads (until the head of each request has been
//! taken; never a body, never anything after an upgrade) into a small buffer, and when hyper hands
//! a request to the service, [`HeadReader::take`] re-parses that head with `httparse` (the parser
//! hyper itself uses) and keeps the names and values in arrival order as a [`RawHeaders`]
//! request extension.
//!
//! The result is only used when it is certainly this request's head: the method, target and every
//! header must equal what hyper parsed. Anything unusual – a chunked request body (whose end the tap
//! does not track), a head over [`MAX_CAPTURED`] bytes, a mismatch – stops the capture for the
//! rest of that connection, and its requests fall back to hyper's lowercase names. HTTP/2 has
//! lowercase names by definition and is not served here.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes buffered while waiting for a head (hyper's own limit is larger; clients whose head
/// is bigger than this get lowercase names).
pub(crate) const MAX_CAPTURED: usize = 64 * 1024;

/// Most header lines parsed (hyper's default is 100).
const MAX_HEADERS: usize = 128;

/// The headers of one request in arrival order, names as the client wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawHeaders(pub Vec<(String, Vec<u8>)>);

#[derive(Debug, Default)]
struct State {
    /// Bytes read and not yet accounted to a head or a body.
    buffer: Vec<u8>,
    /// Bytes of the last request's body still to arrive (they are not kept).
    skip: u64,
}

#[derive(Debug, Default)]
struct Shared {
    /// Set once capturing has stopped for good; checked without the lock on every read.
    off: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn stop(&self, state: &mut State) {
        self.off.store(true, Ordering::Release);
        state.buffer = Vec::new();
    }

    fn record(&self, mut bytes: &[u8]) {
        if bytes.is_empty() || self.off.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let skipped = usize::try_from(state.skip)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        state.skip -= skipped as u64;
        bytes = &bytes[skipped..];
        if state.buffer.len() + bytes.len() > MAX_CAPTURED {
            self.stop(&mut state);
            return;
        }
        state.buffer.extend_from_slice(bytes);
    }
}

/// A stream that copies what is read from it for [`HeadReader`].
#[derive(Debug)]
pub(crate) struct Tap<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Tap<S> {
    /// The stream itself, without the capture (once no more heads will be read from it).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

/// Takes the head of each request from a [`Tap`]'s capture.
#[derive(Debug, Clone)]
pub(crate) struct HeadReader {
    shared: Arc<Shared>,
}

/// Wraps `stream`; the reader takes the captured heads.
pub(crate) fn tap<S>(stream: S) -> (Tap<S>, HeadReader) {
    let shared = Arc::new(Shared::default());
    (
        Tap {
            inner: stream,
            shared: Arc::clone(&shared),
        },
        HeadReader { shared },
    )
}

impl HeadReader {
    /// The client's spelling of `request`'s headers, when its head is the next one captured;
    /// `None` (and no more capturing on this connection) otherwise.
    pub(crate) fn take<B>(&self, request: &http::Request<B>) -> Option<RawHeaders> {
        if self.shared.off.load(Ordering::Acquire) {
            return None;
        }
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let parsed = parse_head(&state.buffer, request);
        let Some((raw, head_len)) = parsed else {
            self.shared.stop(&mut state);
            return None;
        };
        state.buffer.drain(..head_len);
        let headers = request.headers();
        let upgrade = headers.contains_key(http::header::UPGRADE);
        if upgrade || headers.contains_key(http::header::TRANSFER_ENCODING) {
            // After an upgrade the bytes are another protocol's; a chunked body's end is not
            // tracked. Either way this connection's heads are not captured any more.
            self.shared.stop(&mut state);
            return Some(raw);
        }
        let body = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let buffered = usize::try_from(body)
            .unwrap_or(usize::MAX)
            .min(state.buffer.len());
        state.buffer.drain(..buffered);
        state.skip = body - buffered as u64;
        Some(raw)
    }
}

/// Parses the head at the start of `buffer` and checks it is `request`'s: the headers in order
/// and the head's length.
fn parse_head<B>(buffer: &[u8], request: &http::Request<B>) -> Option<(RawHeaders, usize)> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    let httparse::Status::Complete(len) = parsed.parse(buffer).ok()? else {
        return None;
    };
    let target = parsed.path?;
    if parsed.method? != request.method().as_str()
        || *request.uri() != *target
        || parsed.headers.len() != request.headers().len()
    {
        return None;
    }
    let mut raw = Vec::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let seen = request
            .headers()
            .get_all(header.name)
            .iter()
            .any(|v| v.as_bytes() == header.value);
        if !seen {
            return None;
        }
        raw.push((header.name.to_string(), header.value.to_vec()));
    }
    Some((RawHeaders(raw), len))
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.shared.record(&buf.filled()[before..]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request")
    }

    fn names(raw: &RawHeaders) -> Vec<&str> {
        raw.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn keeps_names_and_order_across_keep_alive_requests() {
        let (_, reader) = tap(());
        let wire = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nX-One: 1\r\n\r\nhello\
                     GET /prod?x=1 HTTP/1.1\r\nHost: h\r\nHeaderAuth1: x\r\nx-api-key: k\r\n\
                     X-Custom-MiXed: v\r\nX-Custom-MiXed: w\r\n\r\n";
        // Split as a socket might: the second head arrives with the first body.
        reader.shared.record(&wire[..20]);
        reader.shared.record(&wire[20..]);
        let first = request(
            "POST",
            "/a",
            &[("host", "h"), ("content-length", "5"), ("x-one", "1")],
        );
        let raw = reader.take(&first).expect("first head");
        assert_eq!(names(&raw), ["Host", "Content-Length", "X-One"]);
        let second = request(
            "GET",
            "/prod?x=1",
            &[
                ("host", "h"),
                ("headerauth1", "x"),
                ("x-api-key", "k"),
                ("x-custom-mixed", "v"),
                ("x-custom-mixed", "w"),
            ],
        );
        let raw = reader.take(&second).expect("second head");
        assert_eq!(
            names(&raw),
            [
                "Host",
                "HeaderAuth1",
                "x-api-key",
                "X-Custom-MiXed",
                "X-Custom-MiXed"
            ]
        );
        assert_eq!(raw.0[4].1, b"w");
    }

    #[test]
    fn a_body_arriving_later_is_skipped() {
        let (_, reader) = tap(());
        reader
            .shared
            .record(b"POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab");
        let post = request("POST", "/a", &[("content-length", "4")]);
        assert!(reader.take(&post).is_some());
        reader.shared.record(b"cdGET /b HTTP/1.1\r\nA-B: 1\r\n\r\n");
        let get = request("GET", "/b", &[("a-b", "1")]);
        assert_eq!(names(&reader.take(&get).expect("head")), ["A-B"]);
    }

    #[test]
    fn a_mismatch_or_an_upgrade_stops_capturing() {
        let (_, reader) = tap(());
        reader.shared.record(b"GET /a HTTP/1.1\r\nX-A: 1\r\n\r\n");
        assert!(
            reader
                .take(&request("GET", "/other", &[("x-a", "1")]))
                .is_none()
        );
        reader.shared.record(b"GET /a HTTP/1.1\r\nX-A: 1\r\n\r\n");
        assert!(
            reader
                .take(&request("GET", "/a", &[("x-a", "1")]))
                .is_none()
        );

        let (_, reader) = tap(());
        reader
            .shared
            .record(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
        let upgrade = request("GET", "/ws", &[("upgrade", "websocket")]);
        assert!(reader.take(&upgrade).is_some());
        assert!(reader.shared.off.load(Ordering::Acquire));
        reader.shared.record(b"more frames");
        assert!(reader.shared.state.lock().expect("lock").buffer.is_empty());
    }

    #[test]
    fn an_oversized_head_stops_capturing() {
        let (_, reader) = tap(());
        reader.shared.record(&vec![b'a'; MAX_CAPTURED + 1]);
        assert!(reader.shared.off.load(Ordering::Acquire));
    }
}
