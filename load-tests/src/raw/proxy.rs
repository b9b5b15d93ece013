//! The raw proxy: the least a program can do to forward a WebSocket message to an HTTP backend
//! and answer with the reply, as the floor to hold a gateway's upstream path against.
//!
//! Each connection keeps one keep-alive HTTP/1.1 connection to the backend, opened on its first
//! message. A message becomes `POST /echo-http` with the frame text as the body (what an
//! `http_proxy` integration sends), written with one `write_all`; the answer is parsed with
//! `httparse` from a reused buffer and its body goes back to the client as one text frame. No
//! pool, no timeout, no event JSON, no metrics: what is left is the two extra socket hops.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read from the backend.
const MAX_ANSWER: usize = 1 << 20;

/// One connection's link to the backend.
pub(super) struct Upstream {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Upstream {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            out: Vec::with_capacity(512),
            buf: Vec::with_capacity(4096),
        }
    }

    /// Posts `body` to the backend and returns the answer's body. A failed call drops the
    /// connection, so the next one opens a new one.
    pub(super) async fn call(&mut self, body: &str) -> Result<String> {
        let r = self.exchange(body).await;
        if r.is_err() {
            self.stream = None;
            self.buf.clear();
        }
        r
    }

    async fn exchange(&mut self, body: &str) -> Result<String> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to the backend {}", self.addr))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().context("no backend connection")?;
        self.out.clear();
        self.out
            .extend_from_slice(b"POST /echo-http HTTP/1.1\r\nhost: ");
        self.out.extend_from_slice(self.addr.to_string().as_bytes());
        self.out
            .extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
        self.out
            .extend_from_slice(body.len().to_string().as_bytes());
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body.as_bytes());
        stream.write_all(&self.out).await?;
        loop {
            if let Some((head, len)) = parse(&self.buf)? {
                if self.buf.len() >= head + len {
                    let text = std::str::from_utf8(&self.buf[head..head + len])
                        .context("answer is not UTF-8")?
                        .to_owned();
                    self.buf.drain(..head + len);
                    return Ok(text);
                }
                if head + len > MAX_ANSWER {
                    bail!("answer over {MAX_ANSWER} bytes");
                }
            }
            if self.buf.len() == self.buf.capacity() {
                self.buf.reserve(4096);
            }
            if stream.read_buf(&mut self.buf).await? == 0 {
                bail!("backend closed the connection");
            }
        }
    }
}

/// The head length and the body length of a complete answer head in `buf`; `None` while the
/// head is incomplete. Only 200 answers with a `content-length` are accepted.
fn parse(buf: &[u8]) -> Result<Option<(usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(head) => {
            if res.code != Some(200) {
                bail!("backend answered {:?}", res.code);
            }
            let len = res
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .context("answer without content-length")?;
            let len: usize = std::str::from_utf8(len.value)?.trim().parse()?;
            Ok(Some((head, len)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head_and_waits_for_a_partial_one() {
        let a = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(parse(a).unwrap(), Some((a.len() - 5, 5)));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(parse(b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn forwards_to_the_built_in_backend_over_one_connection() {
        let backend = crate::backend::start(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let mut up = Upstream::new(backend.addr);
        for i in 0..3 {
            let body = format!(r#"{{"action":"echo_http","seq":{i}}}"#);
            assert_eq!(up.call(&body).await.unwrap(), body);
        }
        backend.shutdown().await;
    }
}
