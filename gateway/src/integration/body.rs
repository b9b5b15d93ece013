//! Reading an HTTP answer's body under a size cap (integrations, the `request` authorizer, JWKS
//! documents): streamed chunk by chunk, refused up front when `Content-Length` is over the cap,
//! and abandoned as soon as the bytes read pass it, so no more than the cap is ever held.

use bytes::{Bytes, BytesMut};

/// Why a capped read produced no body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The answer is (or announced itself as) larger than `limit` bytes.
    #[error("response larger than {limit} bytes")]
    TooLarge {
        /// The cap that was passed.
        limit: usize,
    },
    /// Reading failed (including the request's timeout).
    #[error("reading the response failed: {0}")]
    Transport(#[source] reqwest::Error),
}

/// Reads `response`'s body, failing once it passes `cap` bytes. A body that arrives in one chunk
/// is returned without copying.
///
/// # Errors
/// [`ReadError::TooLarge`] (the connection is dropped, not drained) or the transport error.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Bytes, ReadError> {
    let announced = response.content_length();
    if announced.is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge { limit: cap });
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        len = len.saturating_add(chunk.len());
        if len > cap {
            return Err(ReadError::TooLarge { limit: cap });
        }
        if let Some(buffer) = &mut joined {
            buffer.extend_from_slice(&chunk);
        } else if let Some(head) = first.take() {
            let hint = announced.map_or(len, |n| usize::try_from(n).unwrap_or(cap));
            let mut buffer = BytesMut::with_capacity(hint.clamp(len, cap));
            buffer.extend_from_slice(&head);
            buffer.extend_from_slice(&chunk);
            joined = Some(buffer);
        } else {
            first = Some(chunk);
        }
    }
    Ok(match (joined, first) {
        (Some(buffer), _) => buffer.freeze(),
        (None, Some(head)) => head,
        (None, None) => Bytes::new(),
    })
}
