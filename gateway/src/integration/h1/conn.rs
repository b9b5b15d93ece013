//! One connection to a backend (TCP with `TCP_NODELAY`, or a Unix socket) and its read buffer,
//! kept across the requests it carries.

use std::io::{self, IoSlice};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::OwnedSemaphorePermit;

use super::target::Address;
use crate::config::HostPolicy;

/// Read buffer a connection starts with (a usual answer's head and body fit).
const INITIAL_BUFFER: usize = 8 * 1024;
/// A buffer grown past this (a large answer) is not kept for the next request.
const KEPT_BUFFER: usize = 64 * 1024;

#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection and the bytes read from it but not yet consumed.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: Stream,
    /// Bytes received and not yet consumed.
    pub(crate) buf: BytesMut,
    /// Its place among the backend's connections (given back when the connection closes).
    slot: OwnedSemaphorePermit,
}

impl Conn {
    /// Opens a connection to `address` (a host name is resolved first, and refused when it
    /// resolves to an address `hosts` refuses), holding `slot` for as long as it is open.
    ///
    /// # Errors
    /// Resolution or connection failures.
    pub(crate) async fn open(
        address: &Address,
        hosts: &HostPolicy,
        slot: OwnedSemaphorePermit,
    ) -> io::Result<Self> {
        let stream = match address {
            Address::Tcp { host, port } => {
                let tcp = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => TcpStream::connect((ip, *port)).await?,
                    Err(_) => {
                        // Connects to the addresses checked, not to a second resolution's.
                        let resolved: Vec<std::net::SocketAddr> =
                            tokio::net::lookup_host((host.as_str(), *port))
                                .await?
                                .collect();
                        if let Some(refused) =
                            (resolved.iter()).find_map(|a| hosts.check_address(a.ip()).err())
                        {
                            metrics::counter!(crate::telemetry::INTEGRATION_HOST_REFUSED_TOTAL)
                                .increment(1);
                            return Err(io::Error::new(
                                io::ErrorKind::PermissionDenied,
                                format!("`{host}` {refused}"),
                            ));
                        }
                        TcpStream::connect(&resolved[..]).await?
                    }
                };
                tcp.set_nodelay(true)?;
                Stream::Tcp(tcp)
            }
            Address::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        };
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(INITIAL_BUFFER),
            slot,
        })
    }

    /// Closes the connection and hands over its slot (for the connection replacing it).
    pub(crate) fn into_slot(self) -> OwnedSemaphorePermit {
        self.slot
    }

    /// Whether an idle connection can carry another request: nothing unread is buffered and a
    /// read that does not wait finds neither data, nor the end of the stream, nor an error.
    /// (tokio asks the kernel whenever the socket may be readable, which it still is after an
    /// answer read without draining the socket, so the check is usually one `recv` call.)
    pub(crate) fn is_reusable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let probed = match &self.stream {
            Stream::Tcp(s) => s.try_read(&mut probe),
            Stream::Unix(s) => s.try_read(&mut probe),
        };
        matches!(probed, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes all of `parts` with vectored writes (one, unless the socket takes less).
    ///
    /// # Errors
    /// The write error; a socket that accepts nothing is [`io::ErrorKind::WriteZero`].
    pub(crate) async fn write_all(&mut self, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
        let mut parts = parts;
        IoSlice::advance_slices(&mut parts, 0);
        while !parts.is_empty() {
            let n = match &mut self.stream {
                Stream::Tcp(s) => s.write_vectored(parts).await?,
                Stream::Unix(s) => s.write_vectored(parts).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut parts, n);
        }
        Ok(())
    }

    /// Reads more into the buffer, at most `room` bytes; `Ok(0)` is the end of the stream.
    ///
    /// # Errors
    /// The read error.
    pub(crate) async fn fill(&mut self, room: usize) -> io::Result<usize> {
        let room = room.max(1);
        if self.buf.capacity() - self.buf.len() < room.min(INITIAL_BUFFER) {
            self.buf
                .reserve(room.min(INITIAL_BUFFER.max(self.buf.len())));
        }
        let mut limited = (&mut self.buf).limit(room);
        match &mut self.stream {
            Stream::Tcp(s) => s.read_buf(&mut limited).await,
            Stream::Unix(s) => s.read_buf(&mut limited).await,
        }
    }

    /// Prepares the connection to go back to the pool: a buffer grown for a large answer is
    /// replaced by a small one.
    pub(crate) fn trim(&mut self) {
        if self.buf.capacity() > KEPT_BUFFER {
            self.buf = BytesMut::with_capacity(INITIAL_BUFFER);
        }
    }
}
