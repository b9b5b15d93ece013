//! Reading one answer from a connection: the head parsed with `httparse` from the connection's
//! buffer (1xx interim answers skipped), then the body framed by `Content-Length`, chunked
//! transfer coding (trailers skipped) or the end of the stream, never holding more than the cap.

use bytes::{Buf, Bytes, BytesMut};

use super::conn::Conn;

/// Largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines in an answer head.
const MAX_HEADERS: usize = 100;
/// Largest trailer section of a chunked body accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// Largest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Which answer headers the caller keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keep {
    /// Every header (names lowercase; values that are not visible ASCII are left out).
    All,
    /// Only these (lowercase names), whatever their values.
    Only(&'static [&'static str]),
}

/// A complete answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers kept, names lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body (decoded from chunks when chunked).
    pub body: Bytes,
}

impl Answer {
    /// The first value of a kept header.
    #[cfg(test)]
    pub(crate) fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no answer was read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The answer is (or announced itself as) larger than `limit` bytes.
    TooLarge {
        /// The cap passed.
        limit: usize,
    },
    /// The bytes received are not an HTTP/1.x answer.
    Malformed(&'static str),
    /// The stream ended before the answer was complete; `nothing` when not one byte came.
    Closed {
        /// No byte of an answer arrived.
        nothing: bool,
    },
    /// Reading failed; `nothing` when not one byte came.
    Io {
        /// The error.
        error: std::io::Error,
        /// No byte of an answer arrived.
        nothing: bool,
    },
}

/// How the body is delimited.
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the head says, copied out of the buffer.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    framing: Framing,
    /// The connection may carry another request after this answer.
    keep_alive: bool,
}

/// Reads one answer from `conn`; `head_request` when the request was HEAD (no body follows).
/// Returns the answer and whether the connection can be reused.
///
/// # Errors
/// [`ReadError`]; after any error the connection must be dropped.
pub(crate) async fn read(
    conn: &mut Conn,
    head_request: bool,
    cap: usize,
    keep: Keep,
) -> Result<(Answer, bool), ReadError> {
    let head = loop {
        let head = read_head(conn, keep).await?;
        match head.status {
            101 => {
                return Err(ReadError::Malformed(
                    "101 Switching Protocols to a plain request",
                ));
            }
            100..=199 => continue,
            _ => break head,
        }
    };
    let framing = if head_request || matches!(head.status, 204 | 304) {
        Framing::Empty
    } else {
        head.framing
    };
    let (body, complete) = match framing {
        Framing::Empty => (Bytes::new(), true),
        Framing::Length(n) => {
            // Refused before reading a byte of it.
            let n = usize::try_from(n)
                .ok()
                .filter(|n| *n <= cap)
                .ok_or(ReadError::TooLarge { limit: cap })?;
            (read_length(conn, n).await?, true)
        }
        Framing::Chunked => (read_chunked(conn, cap).await?, true),
        Framing::UntilClose => (read_until_close(conn, cap).await?, false),
    };
    // Bytes after the answer (nothing was asked for them) make the connection unusable.
    let reusable = head.keep_alive && complete && conn.buf.is_empty();
    Ok((
        Answer {
            status: head.status,
            headers: head.headers,
            body,
        },
        reusable,
    ))
}

/// Reads and parses one head, consuming it from the buffer.
async fn read_head(conn: &mut Conn, keep: Keep) -> Result<Head, ReadError> {
    loop {
        if !conn.buf.is_empty()
            && let Some((consumed, head)) = parse_head(&conn.buf, keep)?
        {
            conn.buf.advance(consumed);
            return Ok(head);
        }
        if conn.buf.len() >= MAX_HEAD {
            return Err(ReadError::Malformed("answer head too large"));
        }
        let nothing = conn.buf.is_empty();
        match conn.fill(MAX_HEAD - conn.buf.len()).await {
            Ok(0) => return Err(ReadError::Closed { nothing }),
            Ok(_) => {}
            Err(error) => return Err(ReadError::Io { error, nothing }),
        }
    }
}

/// Parses a head at the start of `buf`: `None` while incomplete.
fn parse_head(buf: &[u8], keep: Keep) -> Result<Option<(usize, Head)>, ReadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let consumed = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Malformed("too many answer headers"));
        }
        Err(_) => return Err(ReadError::Malformed("invalid status line or header")),
    };
    let status = response
        .code
        .ok_or(ReadError::Malformed("no status code"))?;
    let http11 = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_coded = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut headers = Vec::new();
    for header in response.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(ReadError::Malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_coded = true;
            // Chunked is valid only as the last coding.
            chunked = last_token(value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        match keep {
            Keep::All => {
                if let Some(value) = visible_ascii(value) {
                    headers.push((name.to_ascii_lowercase(), value.to_string()));
                }
            }
            Keep::Only(only) => {
                if let Some(only) = only.iter().find(|o| name.eq_ignore_ascii_case(o)) {
                    let value = String::from_utf8_lossy(value).into_owned();
                    headers.push((only.to_string(), value));
                }
            }
        }
    }
    let framing = if transfer_coded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else if (100..200).contains(&status) {
        Framing::Empty
    } else {
        Framing::UntilClose
    };
    // A message with both Transfer-Encoding and Content-Length may be an attempt at request
    // smuggling; the connection is not reused after it (RFC 9112 §6.3).
    let keep_alive =
        !close && (http11 || keep_alive_token) && !(transfer_coded && length.is_some());
    Ok(Some((
        consumed,
        Head {
            status,
            headers,
            framing,
            keep_alive,
        },
    )))
}

fn parse_length(value: &[u8]) -> Result<u64, ReadError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ReadError::Malformed("invalid Content-Length"));
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ReadError::Malformed("invalid Content-Length"))
}

fn last_token(value: &[u8]) -> Option<&[u8]> {
    value.rsplit(|b| *b == b',').next().map(<[u8]>::trim_ascii)
}

/// The value as text when it is visible ASCII (and tabs), as `HeaderValue::to_str` accepts.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    if value.iter().all(|&b| (32..127).contains(&b) || b == b'\t') {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// A body of exactly `n` bytes (`n` is within the cap).
async fn read_length(conn: &mut Conn, n: usize) -> Result<Bytes, ReadError> {
    while conn.buf.len() < n {
        let room = n - conn.buf.len();
        match conn.fill(room).await {
            Ok(0) => return Err(ReadError::Closed { nothing: false }),
            Ok(_) => {}
            Err(error) => {
                return Err(ReadError::Io {
                    error,
                    nothing: false,
                });
            }
        }
    }
    Ok(conn.buf.split_to(n).freeze())
}

/// A body up to the end of the stream, failing once it passes `cap`.
async fn read_until_close(conn: &mut Conn, cap: usize) -> Result<Bytes, ReadError> {
    loop {
        if conn.buf.len() > cap {
            return Err(ReadError::TooLarge { limit: cap });
        }
        match conn.fill(cap + 1 - conn.buf.len()).await {
            Ok(0) => return Ok(conn.buf.split().freeze()),
            Ok(_) => {}
            Err(error) => {
                return Err(ReadError::Io {
                    error,
                    nothing: false,
                });
            }
        }
    }
}

/// Reads more of a chunked body; the end of the stream here is an incomplete answer.
async fn more(conn: &mut Conn, room: usize) -> Result<(), ReadError> {
    match conn.fill(room).await {
        Ok(0) => Err(ReadError::Closed { nothing: false }),
        Ok(_) => Ok(()),
        Err(error) => Err(ReadError::Io {
            error,
            nothing: false,
        }),
    }
}

/// A chunked body, decoded, failing once the data passes `cap`; trailers are read and dropped.
async fn read_chunked(conn: &mut Conn, cap: usize) -> Result<Bytes, ReadError> {
    let mut body = BytesMut::new();
    loop {
        let size = loop {
            match httparse::parse_chunk_size(&conn.buf) {
                Ok(httparse::Status::Complete((consumed, size))) => {
                    conn.buf.advance(consumed);
                    break size;
                }
                Ok(httparse::Status::Partial) => {
                    if conn.buf.len() > MAX_CHUNK_LINE {
                        return Err(ReadError::Malformed("chunk size line too long"));
                    }
                    more(conn, MAX_CHUNK_LINE + 1 - conn.buf.len()).await?;
                }
                Err(_) => return Err(ReadError::Malformed("invalid chunk size")),
            }
        };
        if size == 0 {
            skip_trailers(conn).await?;
            return Ok(body.freeze());
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| body.len().saturating_add(*s) <= cap)
            .ok_or(ReadError::TooLarge { limit: cap })?;
        body.reserve(size);
        let mut left = size;
        while left > 0 {
            if conn.buf.is_empty() {
                more(conn, left).await?;
            }
            let take = left.min(conn.buf.len());
            body.extend_from_slice(&conn.buf[..take]);
            conn.buf.advance(take);
            left -= take;
        }
        while conn.buf.len() < 2 {
            more(conn, 2 - conn.buf.len()).await?;
        }
        if &conn.buf[..2] != b"\r\n" {
            return Err(ReadError::Malformed("chunk data not followed by CRLF"));
        }
        conn.buf.advance(2);
    }
}

/// Consumes the trailer section after the last chunk, up to its empty line.
async fn skip_trailers(conn: &mut Conn) -> Result<(), ReadError> {
    let mut seen = 0usize;
    loop {
        if let Some(end) = conn.buf.windows(2).position(|w| w == b"\r\n") {
            conn.buf.advance(end + 2);
            if end == 0 {
                return Ok(());
            }
            seen += end + 2;
        } else {
            let partial = conn.buf.len();
            if seen + partial > MAX_TRAILERS {
                return Err(ReadError::Malformed("trailer section too large"));
            }
            more(conn, MAX_TRAILERS + 2 - seen - partial).await?;
        }
        if seen > MAX_TRAILERS {
            return Err(ReadError::Malformed("trailer section too large"));
        }
    }
}
