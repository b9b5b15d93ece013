//! The PROXY protocol (v1 text and v2 binary, as HAProxy specifies it) on listeners that opt in
//! (`listen_proxy_protocol`, `callback.listen_proxy_protocol`).
//!
//! Every connection on such a listener must open with a header, before TLS or HTTP; the header's
//! source address then stands for the TCP peer everywhere (trusted-proxy checks,
//! `X-Forwarded-For`, `sourceIp`). A `LOCAL` command (health checks of the balancer itself), a
//! v1 `UNKNOWN` and a v2 header for an unspecified or UNIX address family mean: use the TCP
//! peer. A connection whose first bytes are not a valid header, whose header is longer than
//! [`MAX_HEADER_BYTES`], or that does not complete its header in time is closed.
//!
//! Whoever reaches such a listener can claim any address, so it must be reachable by the load
//! balancer only.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use ppp::{v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The longest header accepted (a v2 header is 16 bytes and its addresses and TLVs). v1
/// headers are at most 107 bytes.
pub(crate) const MAX_HEADER_BYTES: usize = 4096;

/// The fixed part of a v2 header.
const V2_FIXED_BYTES: usize = 16;

/// Why a connection's PROXY protocol header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    /// The peer closed the connection before a whole header arrived.
    #[error("the connection closed before a complete PROXY protocol header")]
    Closed,
    /// Reading failed.
    #[error("cannot read the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
    /// The first bytes are not a valid v1 or v2 header.
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(String),
    /// The header announces or takes more than [`MAX_HEADER_BYTES`].
    #[error("PROXY protocol header longer than {MAX_HEADER_BYTES} bytes")]
    TooLong,
}

/// A parsed header and what was read past it.
#[derive(Debug)]
pub(crate) struct ProxyHeader {
    /// The client's address as the balancer saw it; `None` when the header says to use the TCP
    /// peer (`LOCAL`, `UNKNOWN`, unspecified or UNIX addresses).
    pub source: Option<SocketAddr>,
    /// Bytes read after the header (the start of the TLS or HTTP stream).
    pub rest: Bytes,
}

/// Reads and parses the header at the start of `stream`. The caller bounds the time.
///
/// # Errors
/// A [`ProxyHeaderError`]; the connection is then to be closed.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut buf = Vec::with_capacity(512);
    loop {
        if let Some(header) = parse(&buf)? {
            return Ok(header);
        }
        if buf.len() >= MAX_HEADER_BYTES {
            return Err(ProxyHeaderError::TooLong);
        }
        // Never more than the bound; what follows the header in this read is kept.
        let mut limited = (&mut *stream).take((MAX_HEADER_BYTES - buf.len()) as u64);
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(ProxyHeaderError::Closed);
        }
    }
}

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// What a v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included.
const V1_MAX_BYTES: usize = 107;

/// The header at the start of `input`, `None` when more bytes are needed.
fn parse(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    let invalid = |error: &dyn std::fmt::Display| ProxyHeaderError::Invalid(error.to_string());
    let starts =
        |signature: &[u8]| signature.starts_with(&input[..input.len().min(signature.len())]);
    let (source, length) = if input.is_empty() {
        return Ok(None);
    } else if starts(V2_SIGNATURE) {
        match v2::Header::try_from(input) {
            Ok(header) => (v2_source(&header), header.len()),
            Err(v2::ParseError::Partial(_, length))
                if V2_FIXED_BYTES + length > MAX_HEADER_BYTES =>
            {
                return Err(ProxyHeaderError::TooLong);
            }
            Err(v2::ParseError::Incomplete(_) | v2::ParseError::Partial(..)) => return Ok(None),
            Err(error) => return Err(invalid(&error)),
        }
    } else if starts(V1_PREFIX) {
        // The text header is parsed whole, once its CRLF is in.
        let scanned = &input[..input.len().min(V1_MAX_BYTES)];
        let Some(end) = scanned
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|at| at + 2)
        else {
            if input.len() >= V1_MAX_BYTES {
                return Err(ProxyHeaderError::Invalid("v1 header without CRLF".into()));
            }
            return Ok(None);
        };
        let header = v1::Header::try_from(&input[..end]).map_err(|e| invalid(&e))?;
        let source = match header.addresses {
            v1::Addresses::Tcp4(a) => {
                Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            v1::Addresses::Tcp6(a) => {
                Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            v1::Addresses::Unknown => None,
        };
        (source, end)
    } else {
        return Err(ProxyHeaderError::Invalid(
            "the connection does not start with a PROXY protocol signature".into(),
        ));
    };
    Ok(Some(ProxyHeader {
        source,
        rest: Bytes::copy_from_slice(&input[length..]),
    }))
}

/// The client address of a v2 header (`None`: use the TCP peer).
fn v2_source(header: &v2::Header<'_>) -> Option<SocketAddr> {
    match (header.command, header.addresses) {
        (v2::Command::Local, _)
        | (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
        (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
            Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
        }
        (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
            Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
        }
    }
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub(crate) struct Rewound<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewound<S> {
    /// `inner`, with `prefix` read first.
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The bytes not handed on yet, and the stream.
    pub(crate) fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        let length = u16::try_from(addresses.len() + tlvs.len()).expect("short");
        out.extend(length.to_be_bytes());
        out.extend(addresses);
        out.extend(tlvs);
        out
    }

    fn v4_addresses() -> Vec<u8> {
        let mut a = vec![198, 51, 100, 7, 10, 0, 0, 1];
        a.extend(4711u16.to_be_bytes());
        a.extend(443u16.to_be_bytes());
        a
    }

    async fn read_all_at_once(input: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
        let mut reader = input;
        read_header(&mut reader).await
    }

    /// Feeds `input` one byte per read, as a slow peer would.
    async fn read_byte_by_byte(input: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
        let (mut client, mut server) = tokio::io::duplex(1);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for byte in input {
                if client.write_all(&[byte]).await.is_err() {
                    break;
                }
            }
        });
        let header = read_header(&mut server).await;
        writer.abort();
        header
    }

    #[tokio::test]
    async fn v1_tcp4_and_tcp6_give_the_source_and_keep_what_follows() {
        let input = b"PROXY TCP4 198.51.100.7 10.0.0.1 4711 443\r\nGET / HTTP/1.1\r\n";
        let header = read_all_at_once(input).await.expect("valid");
        assert_eq!(
            header.source,
            Some("198.51.100.7:4711".parse().expect("addr"))
        );
        assert_eq!(&header.rest[..], b"GET / HTTP/1.1\r\n");
        let input = b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n";
        let header = read_byte_by_byte(input).await.expect("valid");
        assert_eq!(
            header.source,
            Some("[2001:db8::7]:4711".parse().expect("addr"))
        );
        assert!(header.rest.is_empty());
        let header = read_all_at_once(b"PROXY UNKNOWN\r\nx")
            .await
            .expect("valid");
        assert_eq!(header.source, None);
        assert_eq!(&header.rest[..], b"x");
    }

    #[tokio::test]
    async fn v2_proxy_and_local_commands() {
        let mut input = v2(1, 0x11, &v4_addresses(), &[0xEA, 0, 3, b'v', b'p', b'c']);
        input.extend(b"\x16\x03\x01");
        let header = read_all_at_once(&input).await.expect("valid");
        assert_eq!(
            header.source,
            Some("198.51.100.7:4711".parse().expect("addr"))
        );
        assert_eq!(&header.rest[..], b"\x16\x03\x01");
        let header = read_byte_by_byte(&input).await.expect("valid byte by byte");
        assert_eq!(
            header.source,
            Some("198.51.100.7:4711".parse().expect("addr"))
        );
        let mut v6 = "2001:db8::7"
            .parse::<std::net::Ipv6Addr>()
            .expect("v6")
            .octets()
            .to_vec();
        v6.extend([0u8; 16]);
        v6.extend(4711u16.to_be_bytes());
        v6.extend(443u16.to_be_bytes());
        let header = read_all_at_once(&v2(1, 0x21, &v6, &[]))
            .await
            .expect("valid");
        assert_eq!(
            header.source,
            Some("[2001:db8::7]:4711".parse().expect("addr"))
        );
        // LOCAL: the TCP peer, whatever addresses follow.
        let header = read_all_at_once(&v2(0, 0x11, &v4_addresses(), &[]))
            .await
            .expect("valid");
        assert_eq!(header.source, None);
        let header = read_all_at_once(&v2(0, 0x00, &[], &[]))
            .await
            .expect("valid");
        assert_eq!(header.source, None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for input in [
            &b"GET /prod HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00",
            b"PROXY TCP4 198.51.100.7 10.0.0.1 4711\r\n",
            b"PROXY TCP4 not-an-address 10.0.0.1 4711 443\r\n",
            b"PROXY SCTP 198.51.100.7 10.0.0.1 4711 443\r\n",
            b"PROXY TCP4 198.51.100.7\r\nGET / HTTP/1.1\r\n",
        ] {
            assert!(
                matches!(
                    read_all_at_once(input).await,
                    Err(ProxyHeaderError::Invalid(_))
                ),
                "{input:?}"
            );
        }
        // A v1 line that never ends.
        let long = format!("PROXY TCP4 {}", "1".repeat(200));
        assert!(read_all_at_once(long.as_bytes()).await.is_err());
        // A v2 header announcing more than the bound is refused before it is read.
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend([0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(
            read_all_at_once(&huge).await,
            Err(ProxyHeaderError::TooLong)
        ));
        // Closed half way.
        assert!(matches!(
            read_all_at_once(b"PROXY TCP4 198.51").await,
            Err(ProxyHeaderError::Closed)
        ));
        assert!(matches!(
            read_all_at_once(b"").await,
            Err(ProxyHeaderError::Closed)
        ));
    }

    #[tokio::test]
    async fn rewound_streams_yield_the_prefix_first() {
        let mut stream = Rewound::new(Bytes::from_static(b"ab"), &b"cd"[..]);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("read");
        assert_eq!(out, b"abcd");
    }
}
