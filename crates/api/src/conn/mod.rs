//! Connections: the TCP accept loop and the serving of one HTTP/1.1 connection, with the limits
//! an exposed server needs — a cap on open connections, a header-read timeout, an idle
//! keep-alive timeout — and keep-alive honesty (a response that leaves request body unread
//! drains it or says `Connection: close`). Routes and request handling belong to
//! [`crate::router`]; nothing here knows about them.
//!
//! [`serve_connection`] is generic over the byte stream, so a TLS stream can be served the same
//! way as a TCP one.

mod body;
mod watchdog;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;
use watchdog::{Activity, Busy, Watched};

/// Connection limits (see README, "Connections").
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// A request head must arrive within this time: from the connection's start for its first
    /// request, from the first byte of the head for later ones.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this time.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

/// How accepted connections speak.
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (TLS terminated in front of us, or none).
    Plain,
    /// HTTPS: each connection's TLS handshake runs in its own task (see [`handshake`]).
    Tls(tokio_rustls::TlsAcceptor),
}

/// Accepts TCP connections until `shutdown` resolves and serves each on its own task, at most
/// `limits.max_connections` at once (beyond that the loop stops accepting, so new connections
/// wait in the kernel's listen backlog). On shutdown it closes the listener, asks every
/// connection to finish its request in flight, and returns once all are closed.
pub async fn accept_tcp(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // At least one, and few enough to be waited for all at once at shutdown.
    let cap = limits.max_connections.clamp(1, u32::MAX as usize);
    let slots = Arc::new(Semaphore::new(cap));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        // Small JSON answers: do not wait for Nagle.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let (app, stop, transport) = (app.clone(), stop_rx.clone(), transport.clone());
        tokio::spawn(async move {
            match transport {
                Transport::Plain => serve_connection(stream, remote, app, limits, stop).await,
                Transport::Tls(acceptor) => {
                    let timeout = limits.header_read_timeout;
                    if let Some(tls) = handshake(&acceptor, stream, remote, timeout).await {
                        serve_connection(tls, remote, app, limits, stop).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    drop(stop_rx);
    // No receiver left means no connection left: nothing to tell.
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it closes.
    let _drained = slots.acquire_many(cap as u32).await;
    Ok(())
}

/// One connection's TLS handshake, bounded like a request head: a client that stalls it holds
/// its connection slot at most `timeout`. A failed handshake is the client's business (logged
/// at debug level).
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(client = %remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(client = %remote, "TLS handshake not finished within the header timeout");
            None
        }
    }
}

/// As hyper 0.14 and axum do: a failed handshake is the client's business; anything else
/// (typically EMFILE) is logged and the loop pauses a second so it does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one HTTP/1.1 connection until the client closes it, a timeout closes it, or `stop`
/// turns true (then the request in flight is finished and the connection closed).
pub async fn serve_connection<I>(
    io: I,
    remote: SocketAddr,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = ConnService {
        app,
        remote,
        activity: activity.clone(),
    };
    let io = TokioIo::new(Watched::new(io, activity.clone()));
    // Timeouts are ours (hyper's header timer would also bound keep-alive idleness).
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(client = %remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            why = activity.expired(limits) => {
                // No request is in flight and no answer is being written: closing loses nothing.
                tracing::debug!(client = %remote, reason = why, "closing connection");
                return;
            }
        }
    }
}

/// The router as hyper sees it on one connection: adds the client address, marks the
/// connection busy until the answer is written, and keeps keep-alive honest.
#[derive(Clone)]
struct ConnService {
    app: Router,
    remote: SocketAddr,
    activity: Arc<Activity>,
}

type Answer = axum::response::Response;

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let busy = self.activity.busy();
        let (app, remote) = (self.app.clone(), self.remote);
        Box::pin(async move {
            let answer = handle(app, remote, req).await;
            Ok(answer.map(|b| axum::body::Body::new(Busy::until_written(b, busy))))
        })
    }
}

/// Runs the request through the router, then settles the request body the handler left.
async fn handle(app: Router, remote: SocketAddr, req: hyper::Request<Incoming>) -> Answer {
    let (mut parts, incoming) = req.into_parts();
    parts.extensions.insert(ConnectInfo(remote));
    let expects_continue = parts
        .headers
        .get(hyper::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (reader, leftover) = body::lend(incoming);
    let req = hyper::Request::from_parts(parts, axum::body::Body::new(reader));
    let Ok(mut answer) = app.oneshot(req).await;
    if !leftover.settle(expects_continue).await {
        answer.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    answer
}
