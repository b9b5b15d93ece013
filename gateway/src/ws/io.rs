//! The socket under an open WebSocket. A plain-TCP connection whose upgrade left nothing
//! buffered is unwrapped back to its `TcpStream`: the boxed upgrade, the request-head tap and
//! the PROXY-header rewind are only needed during the handshake, and an idle connection should
//! not carry them for its whole life (bytes read ahead of the socket are kept in front of it).
//! TLS connections keep hyper's `Upgraded`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::proxy_protocol::Rewound;
use crate::raw_head::Tap;

/// What the plain-TCP accept path hands hyper (see `server::serve_connection`).
type PlainIo = TokioIo<Tap<Rewound<TcpStream>>>;

/// The socket of an open WebSocket.
#[derive(Debug)]
pub(super) enum Io {
    /// The TCP stream itself.
    Tcp(TcpStream),
    /// The TCP stream, after bytes that were read ahead of it during the handshake.
    Rewound(Rewound<TcpStream>),
    /// Whatever hyper upgraded (TLS, or a stream with bytes read ahead).
    Upgraded(TokioIo<Upgraded>),
}

impl Io {
    /// The leanest form of `upgraded`.
    pub(super) fn new(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<PlainIo>() {
            Ok(parts) => {
                let (rest, tcp) = parts.io.into_inner().into_inner().into_parts();
                // What hyper read past the handshake comes first, then what the PROXY-header
                // reader still held.
                let ahead = match (parts.read_buf.is_empty(), rest.is_empty()) {
                    (_, true) => parts.read_buf,
                    (true, false) => rest,
                    (false, false) => [parts.read_buf, rest].concat().into(),
                };
                if ahead.is_empty() {
                    Self::Tcp(tcp)
                } else {
                    Self::Rewound(Rewound::new(ahead, tcp))
                }
            }
            Err(upgraded) => Self::Upgraded(TokioIo::new(upgraded)),
        }
    }
}

impl Io {
    /// Ready when a read may find something: the plain socket is readable (or has an error to
    /// report). Streams with bytes of their own in front of the socket (read ahead during the
    /// handshake, or decrypted by TLS) are always ready: only their read can tell.
    pub(super) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx).map(|_| ()),
            Self::Rewound(_) | Self::Upgraded(_) => Poll::Ready(()),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Rewound(s) => Pin::new(s).poll_read(cx, buf),
            Self::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Rewound(s) => Pin::new(s).poll_write(cx, buf),
            Self::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Rewound(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Upgraded(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Rewound(s) => s.is_write_vectored(),
            Self::Upgraded(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Rewound(s) => Pin::new(s).poll_flush(cx),
            Self::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Rewound(s) => Pin::new(s).poll_shutdown(cx),
            Self::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
