//! Keep-alive honesty. A handler may answer without reading the request body (401, 404, an
//! early 413). hyper then closes the connection after the answer without saying so, and a
//! client reusing it fails its next request. So the body is lent to the handler, and once the
//! answer is ready what is left is settled: a small remainder is read and dropped (the
//! connection stays usable), anything else makes the answer carry `Connection: close`.

use axum::body::Bytes;
use axum::BoxError;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

/// Largest unread remainder read and dropped to keep a connection.
pub(crate) const DRAIN_MAX_BYTES: u64 = 64 * 1024;
/// How long the remainder may take to arrive before the connection is given up instead.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

struct Lent {
    body: Option<Incoming>,
    /// The handler read up to the end of the body.
    ended: bool,
    /// Reading failed: the connection is not trusted any more.
    failed: bool,
}

type Shared = Arc<Mutex<Lent>>;

fn lock(s: &Shared) -> MutexGuard<'_, Lent> {
    // A poisoned lock only means a handler panicked while polling; the state is still valid.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The body as the handler sees it.
pub(crate) struct Reader(Shared);

/// What the handler left of the body, settled once the answer is ready.
pub(crate) struct Leftover(Shared);

pub(crate) fn lend(body: Incoming) -> (Reader, Leftover) {
    let shared = Arc::new(Mutex::new(Lent {
        body: Some(body),
        ended: false,
        failed: false,
    }));
    (Reader(shared.clone()), Leftover(shared))
}

impl Body for Reader {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut lent = lock(&self.0);
        let ended = lent.ended;
        let Some(body) = lent.body.as_mut() else {
            // Taken back once the answer was ready: a reader still running (a task the handler
            // left behind) must not take the cut for the body's end.
            return Poll::Ready(
                (!ended).then(|| Err("request body taken back after the answer".into())),
            );
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => lent.ended = true,
            Poll::Ready(Some(Err(_))) => lent.failed = true,
            _ => {}
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        let lent = lock(&self.0);
        lent.ended || lent.body.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &lock(&self.0).body {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

impl Leftover {
    /// True when the connection can serve another request: the body was read to its end, or
    /// its small remainder has now been read. `expects_continue`: the client waits for a
    /// `100 Continue` before sending the body; it is not invited to send a body nobody reads.
    pub(crate) async fn settle(self, expects_continue: bool) -> bool {
        let body = {
            let mut lent = lock(&self.0);
            if lent.failed {
                return false;
            }
            match lent.body.take() {
                Some(b) if !lent.ended && !b.is_end_stream() => b,
                _ => return true,
            }
        };
        let small = body
            .size_hint()
            .upper()
            .is_some_and(|n| n <= DRAIN_MAX_BYTES);
        if expects_continue || !small {
            return false;
        }
        tokio::time::timeout(DRAIN_TIMEOUT, drain(body))
            .await
            .unwrap_or(false)
    }
}

/// Reads `body` to its end; false when it fails or turns out larger than announced.
async fn drain(mut body: Incoming) -> bool {
    use http_body_util::BodyExt;
    let mut read = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                read += f.data_ref().map_or(0, |d| d.len() as u64);
                if read > DRAIN_MAX_BYTES {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}
