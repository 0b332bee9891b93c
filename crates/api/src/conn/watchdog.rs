//! When a connection may be closed for inactivity. A connection is *busy* from a request's
//! head until its answer is written; otherwise it waits for a head, which must arrive within
//! the header-read timeout (counted from the connection's start for the first request — a
//! client that connects and trickles or says nothing is cut off — and from the first byte of
//! the head for later ones), after an idle pause of at most the idle timeout.
//!
//! The byte stream is observed ([`Watched`]) to see a head begin; the service marks busy
//! periods ([`Activity::busy`], [`Busy`]).

use super::ConnLimits;
use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Requests in flight or answers being written.
    Busy(usize),
    /// Waiting for the first request since `since` (the connection's start).
    First { since: Instant },
    /// Idle since the last answer was written; `head_started` once a byte arrived.
    Between {
        since: Instant,
        head_started: Option<Instant>,
    },
}

pub(crate) struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::First {
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        // Every update is a single assignment: a poisoned lock still holds a valid phase.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request head was read; the connection is busy until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> BusyGuard {
        {
            let mut p = self.phase();
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            };
        }
        self.changed.notify_one();
        BusyGuard(self.clone())
    }

    fn read_bytes(&self) {
        let mut p = self.phase();
        if let Phase::Between {
            since,
            head_started: None,
        } = *p
        {
            *p = Phase::Between {
                since,
                head_started: Some(Instant::now()),
            };
            drop(p);
            self.changed.notify_one();
        }
    }

    /// When the connection may be closed, if nothing changes before.
    fn deadline(&self, limits: ConnLimits) -> Option<Instant> {
        match *self.phase() {
            Phase::Busy(_) => None,
            Phase::First { since } => Some(since + limits.header_read_timeout),
            Phase::Between {
                head_started: Some(t),
                ..
            } => Some(t + limits.header_read_timeout),
            Phase::Between {
                since,
                head_started: None,
            } => Some(since + limits.idle_timeout),
        }
    }

    fn reason(&self) -> &'static str {
        match *self.phase() {
            Phase::Between {
                head_started: None, ..
            } => "idle timeout",
            _ => "header read timeout",
        }
    }

    /// Resolves (with the reason) once the connection has been waiting past its deadline.
    pub(crate) async fn expired(&self, limits: ConnLimits) -> &'static str {
        loop {
            // Registered before reading the phase, so no change is missed.
            let changed = self.changed.notified();
            match self.deadline(limits) {
                None => changed.await,
                Some(deadline) => {
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(deadline) => {
                            if self.deadline(limits).is_some_and(|d| d <= Instant::now()) {
                                return self.reason();
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Ends a busy period when dropped.
pub(crate) struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        {
            let mut p = self.0.phase();
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Between {
                    since: Instant::now(),
                    head_started: None,
                },
            };
        }
        self.0.changed.notify_one();
    }
}

/// An answer body that keeps its connection busy until hyper has written (and dropped) it.
pub(crate) struct Busy {
    body: axum::body::Body,
    _guard: BusyGuard,
}

impl Busy {
    pub(crate) fn until_written(body: axum::body::Body, guard: BusyGuard) -> Self {
        Self {
            body,
            _guard: guard,
        }
    }
}

impl Body for Busy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A byte stream that tells its [`Activity`] when bytes arrive.
pub(crate) struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    pub(crate) fn new(io: I, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_bytes();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
