//! Request bodies, read only through here and only after the headers that can authenticate a
//! request were checked.
//!
//! A body costs what it holds and no more: `Content-Length` over the route's limit is refused
//! before a byte is read, and every byte kept comes out of a pool shared by all requests of its
//! kind, so that many slow clients together hold at most [`POOL`] bytes, whatever they send.
//! A request that finds its pool empty waits a moment for it, then is told to come back
//! (503): a flood delays webhooks, it cannot take the memory the controller needs.
//! A signed body is fed to its MAC as it arrives, so verifying it keeps no second copy.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes all bodies of one pool may hold at once.
pub(crate) const POOL: usize = 8 << 20;
/// How long a request waits for room in its pool.
const WAIT: Duration = Duration::from_secs(2);
/// Bodies are kept in blocks of this size, which go back to their pool when the request
/// ends and are used again: after a flood the process holds at most the pool's blocks, and
/// never a heap fragmented by a thousand buffers of every size.
const BLOCK: usize = 16 << 10;

/// Largest body of a webhook delivery.
pub(crate) const HOOK: usize = crate::consts::MAX_BODY;
/// Largest body of an API action or a forwarded one: a few parameters.
pub(crate) const ACTION: usize = 64 << 10;
/// Largest body of a dashboard form: a token and a duration.
pub(crate) const FORM: usize = 16 << 10;

type Blocks = Arc<std::sync::Mutex<Vec<Box<[u8]>>>>;

/// One pool: room for so many blocks, and the blocks given back.
struct Pool {
    room: Arc<Semaphore>,
    free: Blocks,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            room: Arc::new(Semaphore::new(POOL / BLOCK)),
            free: Arc::default(),
        }
    }
}

/// Room for bodies: one pool for requests whose sender is not known yet (signed bodies, forms
/// carrying their token), one for those whose headers already proved it.
#[derive(Default)]
pub(crate) struct Pools {
    anonymous: Pool,
    authenticated: Pool,
}

/// Who sent a body, as far as its headers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    /// Not known until the body is read (a signature over it, a token inside it).
    Unknown,
    /// Its headers carried a valid token.
    Authenticated,
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Over the route's limit.
    #[error("the body is over {limit} bytes")]
    TooLarge { limit: usize },
    /// Every pool byte is held by other requests.
    #[error("too many requests are sending bodies; try again in a moment")]
    Busy,
    /// The client went away or sent something that is not HTTP.
    #[error("cannot read the body: {0}")]
    Read(String),
}

impl BodyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A body read within its limits, in blocks that are the pool's again when it is dropped.
pub(crate) struct Read {
    blocks: Vec<Box<[u8]>>,
    len: usize,
    free: Blocks,
    _held: Option<OwnedSemaphorePermit>,
}

impl Drop for Read {
    fn drop(&mut self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.append(&mut self.blocks);
    }
}

impl Read {
    /// The body in one piece.
    pub(crate) fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self.blocks.as_slice() {
            [] => std::borrow::Cow::Borrowed(&[]),
            [one] => std::borrow::Cow::Borrowed(&one[..self.len]),
            many => {
                let mut out = Vec::with_capacity(self.len);
                for b in many {
                    let n = (self.len - out.len()).min(BLOCK);
                    out.extend_from_slice(&b[..n]);
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    /// Its length in bytes.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

/// The length the headers announce, if any.
fn announced(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Pools {
    fn pool(&self, sender: Sender) -> &Pool {
        match sender {
            Sender::Unknown => &self.anonymous,
            Sender::Authenticated => &self.authenticated,
        }
    }

    /// Read `body` of at most `limit` bytes, feeding each piece to `each` (a MAC) as it comes.
    pub(crate) async fn read(
        &self,
        sender: Sender,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
        mut each: impl FnMut(&[u8]),
    ) -> Result<Read, BodyError> {
        let pool = self.pool(sender);
        if announced(headers).is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge { limit });
        }
        // Room is taken a block at a time as bytes arrive, not as announced: a client that
        // announces a megabyte and sends nothing holds nothing. Each piece is copied and
        // dropped at once: a piece is a slice of the connection's read buffer and keeps all of
        // it alive (a body sent one byte per packet would hold kilobytes per byte).
        let mut read = Read {
            blocks: Vec::new(),
            len: 0,
            free: pool.free.clone(),
            _held: None,
        };
        let mut stream = body.into_data_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| BodyError::Read(e.to_string()))?;
            if read.len + piece.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            each(&piece);
            let mut rest: &[u8] = &piece;
            while !rest.is_empty() {
                let at = read.len % BLOCK;
                if at == 0 {
                    let permit = take(&pool.room).await?;
                    match &mut read._held {
                        Some(h) => h.merge(permit),
                        None => read._held = Some(permit),
                    }
                    let block = pool
                        .free
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .pop()
                        .unwrap_or_else(|| vec![0u8; BLOCK].into_boxed_slice());
                    read.blocks.push(block);
                }
                let n = rest.len().min(BLOCK - at);
                if let Some(block) = read.blocks.last_mut() {
                    block[at..at + n].copy_from_slice(&rest[..n]);
                }
                read.len += n;
                rest = &rest[n..];
            }
        }
        Ok(read)
    }
}

async fn take(pool: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, BodyError> {
    match tokio::time::timeout(WAIT, pool.clone().acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(BodyError::Busy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = len {
            h.insert("content-length", n.to_string().parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_refused_before_it_is_read_and_while_it_streams() {
        let pools = Pools::default();
        let r = pools
            .read(
                Sender::Unknown,
                &headers(Some(FORM + 1)),
                Body::from(vec![b'a'; 10]),
                FORM,
                |_| {},
            )
            .await;
        assert!(matches!(r, Err(BodyError::TooLarge { .. })));
        // Without a length: refused as it crosses the limit.
        let r = pools
            .read(
                Sender::Unknown,
                &headers(None),
                Body::from(vec![b'a'; FORM + 1]),
                FORM,
                |_| {},
            )
            .await;
        assert!(matches!(r, Err(BodyError::TooLarge { .. })));
        let mut fed = 0;
        let r = pools
            .read(
                Sender::Unknown,
                &headers(None),
                Body::from(vec![b'a'; 100]),
                FORM,
                |c| fed += c.len(),
            )
            .await
            .unwrap();
        assert_eq!((r.len(), r.bytes().len(), fed), (100, 100, 100));
        // Across blocks, in order.
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let r = pools
            .read(
                Sender::Unknown,
                &headers(None),
                Body::from(big.clone()),
                HOOK,
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(&*r.bytes(), &big[..]);
    }

    #[tokio::test]
    async fn bodies_held_together_never_exceed_the_pool_and_give_it_back() {
        let pools = Pools::default();
        let mut kept = vec![];
        for _ in 0..POOL / HOOK {
            let r = pools
                .read(
                    Sender::Unknown,
                    &headers(Some(HOOK)),
                    Body::from(vec![b'a'; HOOK]),
                    HOOK,
                    |_| {},
                )
                .await
                .unwrap();
            kept.push(r);
        }
        let full = pools
            .read(
                Sender::Unknown,
                &headers(Some(HOOK)),
                Body::from(vec![b'a'; HOOK]),
                HOOK,
                |_| {},
            )
            .await;
        assert!(matches!(full, Err(BodyError::Busy)));
        // The other pool is not touched by this one.
        assert!(pools
            .read(
                Sender::Authenticated,
                &headers(Some(10)),
                Body::from(vec![b'a'; 10]),
                HOOK,
                |_| {}
            )
            .await
            .is_ok());
        kept.pop();
        assert!(pools
            .read(
                Sender::Unknown,
                &headers(Some(HOOK)),
                Body::from(vec![b'a'; HOOK]),
                HOOK,
                |_| {}
            )
            .await
            .is_ok());
    }
}
