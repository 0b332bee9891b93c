//! A real local webhook receiver for tests: records every request, answers as scripted, and
//! verifies signatures with code written from the SPEC's description (not the server's signer).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// Status with a `Retry-After` header (seconds).
    RetryAfter(u16, u64),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers with this status after this many milliseconds.
    Slow(u16, u64),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("notification body is JSON")
    }

    /// A `webhook_connectivity_check` body (not a notification).
    pub fn is_connectivity_check(&self) -> bool {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .map(|v| v["event_name"] == "webhook_connectivity_check")
            .unwrap_or(false)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// SPEC §4: X-Signature = URL-safe base64 (padded) of HMAC-SHA256 keyed with the
    /// URL-safe-base64-decoded secret over "{X-Timestamp}.{raw body}"; timestamp within 300 s.
    pub fn signature_valid(&self, secret: &str) -> bool {
        let b64 = base64::engine::general_purpose::URL_SAFE;
        let Ok(key) = b64.decode(secret) else {
            return false;
        };
        let ts = self.header("x-timestamp");
        let Ok(ts_num) = ts.parse::<i64>() else {
            return false;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if (now - ts_num).abs() > 300 {
            return false;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let expected = b64.encode(mac.finalize().into_bytes());
        expected == self.header("x-signature")
    }

    /// Standard Webhooks (www.standardwebhooks.com), written from that spec: `webhook-signature`
    /// holds space-separated `v1,<standard base64 of HMAC-SHA256(key, "{webhook-id}.
    /// {webhook-timestamp}.{body}")>`, the key being the secret's bytes; one entry must match.
    pub fn standard_signature_valid(&self, secret: &str) -> bool {
        let Ok(key) = base64::engine::general_purpose::URL_SAFE.decode(secret) else {
            return false;
        };
        let (id, ts) = (self.header("webhook-id"), self.header("webhook-timestamp"));
        if id.is_empty() || ts.parse::<i64>().is_err() {
            return false;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(&self.body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        self.header("webhook-signature")
            .split(' ')
            .any(|s| s == expected)
    }

    /// The same check by the Standard Webhooks reference library for Python (`pip install
    /// standardwebhooks`), given our secret as a receiver would: `whsec_` + its bytes in
    /// standard base64. True when the library accepts the delivery.
    pub fn standard_library_accepts(&self, secret: &str) -> bool {
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(secret)
            .expect("our secrets are URL-safe base64");
        let whsec = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let script = "import sys, json\n\
            from standardwebhooks import Webhook\n\
            h = json.loads(sys.argv[2])\n\
            Webhook(sys.argv[1]).verify(sys.stdin.buffer.read(), h)\n";
        let headers = serde_json::json!({
            "webhook-id": self.header("webhook-id"),
            "webhook-timestamp": self.header("webhook-timestamp"),
            "webhook-signature": self.header("webhook-signature"),
        });
        let mut child = std::process::Command::new("python3")
            .args(["-c", script, &whsec, &headers.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs (with the standardwebhooks package installed)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&self.body).unwrap();
        child.wait().unwrap().success()
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    default: Option<Reply>,
    /// How connectivity checks are answered (before script and default), when set.
    check: Option<Reply>,
    received: Vec<Received>,
}

/// Completed TLS handshakes of an HTTPS receiver (one per connection).
#[derive(Clone, Default)]
pub struct Handshakes(Arc<std::sync::atomic::AtomicUsize>);

impl Handshakes {
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut g = inner.lock().unwrap();
        let received = Received {
            at: Instant::now(),
            headers,
            body: body.to_vec(),
        };
        let check = g.check.clone().filter(|_| received.is_connectivity_check());
        g.received.push(received);
        check
            .or_else(|| g.script.pop_front())
            .or_else(|| g.default.clone())
            .unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), "ok").into_response(),
        Reply::RetryAfter(s, secs) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Reply::Slow(s, ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            (StatusCode::from_u16(s).unwrap(), "ok").into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    /// Starts a receiver answering `default` unless a scripted reply is queued.
    pub async fn start(default: Reply) -> Self {
        let (inner, app) = Self::app(default);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            inner,
            _stop: Arc::new(tx),
        }
    }

    /// Starts an HTTPS receiver presenting `cert` (made for `localhost`); its URL is
    /// `https://localhost:<port>/hook`. `handshakes` counts TLS handshakes that completed.
    pub async fn start_tls(default: Reply, cert: &tls::test_pki::TestCert) -> (Self, Handshakes) {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = cert.write(dir.path(), "receiver");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(
            tls::server_config(&c, &k).expect("receiver certificate"),
        ));
        let (inner, app) = Self::app(default);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let handshakes = Handshakes::default();
        let counted = handshakes.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => return,
                    },
                    _ = &mut rx => return,
                };
                let (acceptor, app, counted) = (acceptor.clone(), app.clone(), counted.clone());
                tokio::spawn(async move {
                    // A refused handshake (the client distrusts us) just ends the connection.
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    counted.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let rx = Receiver {
            url: format!("https://localhost:{port}/hook"),
            inner,
            _stop: Arc::new(tx),
        };
        (rx, handshakes)
    }

    fn app(default: Reply) -> (Arc<Mutex<Inner>>, axum::Router) {
        let inner = Arc::new(Mutex::new(Inner {
            default: Some(default),
            ..Default::default()
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        (inner, app)
    }

    /// Queues replies used (in order) before the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        self.inner.lock().unwrap().default = Some(reply);
    }

    /// Answers connectivity checks with `reply`, whatever the script and default say.
    pub fn set_check_reply(&self, reply: Reply) {
        self.inner.lock().unwrap().check = Some(reply);
    }

    /// Every request, in arrival order (recorded before it is answered).
    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().received.len()
    }

    /// Notifications received (connectivity checks excluded).
    pub fn notifications(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| !r.header("x-delivery-id").is_empty() && !r.is_connectivity_check())
            .collect()
    }

    /// Waits until at least `n` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} requests within {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
