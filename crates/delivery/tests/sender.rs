//! Real-socket tests of `Sender` against local receivers on 127.0.0.1 / [::1].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prospect_events_delivery::{
    signed_headers, AttemptResult, Outcome, Secrets, Sender, SenderConfig,
};
use sha2::Sha256;
use tls::test_pki::{TestCa, TestCert};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
struct Recorded {
    headers: hyper::HeaderMap,
    body: Vec<u8>,
    path: String,
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Self {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    fn header(mut self, k: &'static str, v: &str) -> Self {
        self.headers.push((k, v.to_string()));
        self
    }
    fn body(mut self, b: &str) -> Self {
        self.body = b.to_string();
        self
    }
}

struct Receiver {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Receiver {
    async fn start(bind: &str, reply: Reply) -> std::io::Result<Receiver> {
        Receiver::start_with(bind, reply, None).await
    }

    /// A receiver that speaks HTTPS with `cert` (its URLs are still built with [`Receiver::url`],
    /// so tests write `https` themselves).
    async fn start_tls(bind: &str, reply: Reply, cert: &TestCert) -> std::io::Result<Receiver> {
        let dir = tempfile::tempdir()?;
        let (c, k) = cert.write(dir.path(), "receiver");
        let config = tls::server_config(&c, &k).expect("receiver TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Receiver::start_with(bind, reply, Some(acceptor)).await
    }

    async fn start_with(
        bind: &str,
        reply: Reply,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, reply, tls) = (r.clone(), reply.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (r, reply) = (r.clone(), reply.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            r.lock().unwrap().push(Recorded {
                                headers: parts.headers,
                                body,
                                path: parts.uri.path().to_string(),
                            });
                            tokio::time::sleep(reply.delay).await;
                            let mut resp = Response::builder().status(reply.status);
                            for (k, v) in &reply.headers {
                                resp = resp.header(*k, v);
                            }
                            Ok::<_, Infallible>(
                                resp.body(Full::new(Bytes::from(reply.body))).unwrap(),
                            )
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), svc).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => http.serve_connection(TokioIo::new(stream), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Ok(Receiver {
            addr,
            connections,
            requests,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const BODY: &str = r#"{"tenant_id":"t1","partner_id":"p1","event_id":"ev-1","event_name":"prospect_updated","data":{"a":1}}"#;

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sender(allow_private: bool, timeout: Duration) -> Sender {
    Sender::new(SenderConfig {
        timeout,
        allow_private_targets: allow_private,
        ..Default::default()
    })
    .unwrap()
}

async fn send(s: &Sender, url: &str) -> AttemptResult {
    let now = time::OffsetDateTime::from_unix_timestamp(now_unix()).unwrap();
    let h = signed_headers(Secrets::one(SECRET), "dl-1", "ev-1", now, BODY.as_bytes()).unwrap();
    s.send(url, BODY.as_bytes().to_vec(), &h).await
}

/// Receiver-side verification written from the SPEC text, independent of `domain::signing`.
fn spec_verify(secret: &str, ts: &str, sig: &str, body: &[u8]) -> bool {
    let key = URL_SAFE.decode(secret).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let expected = URL_SAFE.encode(mac.finalize().into_bytes());
    expected == sig
}

/// The Standard Webhooks check written from that spec: `v1,` + standard base64 of
/// HMAC-SHA256(decoded secret, "{webhook-id}.{webhook-timestamp}.{body}").
fn standard_verify(secret: &str, id: &str, ts: &str, sigs: &str, body: &[u8]) -> bool {
    let key = URL_SAFE.decode(secret).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    sigs.split(' ').any(|s| s == expected)
}

#[tokio::test]
async fn delivered_with_signed_headers() {
    let rx = Receiver::start("127.0.0.1:0", Reply::status(200).body("ok thanks"))
        .await
        .unwrap();
    let s = sender(true, Duration::from_secs(5));
    let before = now_unix();
    let r = send(&s, &rx.url("/hook?x=1")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.status, Some(200));
    assert_eq!(r.error, None);
    assert_eq!(r.response_body_prefix, "ok thanks");
    assert!(!r.ssrf_refused && !r.timed_out);

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.path, "/hook");
    assert_eq!(q.body, BODY.as_bytes());
    let h = |n: &str| q.headers.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("x-delivery-id"), "dl-1");
    assert_eq!(h("x-event-id"), "ev-1");
    assert!(h("user-agent").starts_with("prospect-events/"));
    let ts: i64 = h("x-timestamp").parse().unwrap();
    assert!((before..=now_unix()).contains(&ts));
    assert!(spec_verify(
        SECRET,
        &h("x-timestamp"),
        &h("x-signature"),
        &q.body
    ));
    assert!(!spec_verify(
        SECRET,
        &(ts + 1).to_string(),
        &h("x-signature"),
        &q.body
    ));
    assert_eq!(h("webhook-id"), "dl-1");
    assert_eq!(h("webhook-timestamp"), h("x-timestamp"));
    assert!(standard_verify(
        SECRET,
        "dl-1",
        &h("webhook-timestamp"),
        &h("webhook-signature"),
        &q.body
    ));
    // And the library's own verifier agrees.
    assert!(domain::signing::verify(
        SECRET,
        &h("x-timestamp"),
        &h("x-signature"),
        &q.body,
        now_unix(),
        300
    ));
}

#[tokio::test]
async fn keep_alive_reuses_connection() {
    let rx = Receiver::start("127.0.0.1:0", Reply::status(204))
        .await
        .unwrap();
    let s = sender(true, Duration::from_secs(5));
    for _ in 0..3 {
        assert_eq!(send(&s, &rx.url("/")).await.outcome, Outcome::Delivered);
    }
    assert_eq!(rx.requests().len(), 3);
    assert_eq!(rx.connections(), 1);
}

#[tokio::test]
async fn server_error_is_retry() {
    let rx = Receiver::start("127.0.0.1:0", Reply::status(500).body("boom"))
        .await
        .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert_eq!(r.status, Some(500));
    assert_eq!(r.error.as_deref(), Some("HTTP 500"));
    assert_eq!(r.response_body_prefix, "boom");
    assert_eq!(r.retry_after, None);
}

#[tokio::test]
async fn gone_disables() {
    let rx = Receiver::start("127.0.0.1:0", Reply::status(410))
        .await
        .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.outcome, Outcome::Gone);
    assert_eq!(r.status, Some(410));
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    let rx = Receiver::start(
        "127.0.0.1:0",
        Reply::status(429).header("retry-after", "42"),
    )
    .await
    .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert_eq!(r.status, Some(429));
    assert_eq!(r.retry_after, Some(Duration::from_secs(42)));

    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let rx = Receiver::start(
        "127.0.0.1:0",
        Reply::status(503).header("retry-after", &date),
    )
    .await
    .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.outcome, Outcome::Retry);
    let ra = r.retry_after.unwrap();
    assert!(
        ra > Duration::from_secs(115) && ra <= Duration::from_secs(120),
        "{ra:?}"
    );

    // Retry-After is only honoured on 429/503.
    let rx = Receiver::start(
        "127.0.0.1:0",
        Reply::status(500).header("retry-after", "42"),
    )
    .await
    .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.retry_after, None);
}

#[tokio::test]
async fn redirect_not_followed() {
    let target = Receiver::start("127.0.0.1:0", Reply::status(200))
        .await
        .unwrap();
    let rx = Receiver::start(
        "127.0.0.1:0",
        Reply::status(302).header("location", &target.url("/elsewhere")),
    )
    .await
    .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert_eq!(r.status, Some(302));
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .starts_with("redirect not followed"),
        "{r:?}"
    );
    assert_eq!(target.connections(), 0);
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn hanging_receiver_times_out() {
    let mut reply = Reply::status(200);
    reply.delay = Duration::from_secs(30);
    let rx = Receiver::start("127.0.0.1:0", reply).await.unwrap();
    let t = Instant::now();
    let r = send(&sender(true, Duration::from_millis(300)), &rx.url("/")).await;
    let elapsed = t.elapsed();
    assert_eq!(r.outcome, Outcome::Retry);
    assert!(r.timed_out, "{r:?}");
    assert_eq!(r.status, None);
    assert_eq!(r.error.as_deref(), Some("timeout after 300 ms"));
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(r.latency_ms >= 290);
}

#[tokio::test]
async fn connection_refused_is_retry() {
    // Bind then drop to get a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = send(
        &sender(true, Duration::from_secs(5)),
        &format!("http://127.0.0.1:{port}/"),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert_eq!(r.status, None);
    assert!(
        r.error.as_deref().unwrap().starts_with("connection error"),
        "{r:?}"
    );
    assert!(!r.ssrf_refused && !r.timed_out);
}

#[tokio::test]
async fn ssrf_guard_refuses_local_targets() {
    let rx = Receiver::start("127.0.0.1:0", Reply::status(200))
        .await
        .unwrap();
    let port = rx.addr.port();
    let guarded = sender(false, Duration::from_secs(5));
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
    ] {
        let r = send(&guarded, &url).await;
        assert_eq!(r.outcome, Outcome::Retry, "{url}");
        assert!(r.ssrf_refused, "{url}: {r:?}");
        assert!(r.error.as_deref().unwrap().contains("SSRF"), "{r:?}");
        assert_eq!(r.status, None);
    }
    assert_eq!(rx.connections(), 0, "no connection may reach the receiver");

    let open = sender(true, Duration::from_secs(5));
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        let r = send(&open, &url).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{url}: {r:?}");
    }
    assert_eq!(rx.requests().len(), 2);
}

#[tokio::test]
async fn ssrf_guard_refuses_ipv6_loopback() {
    let Ok(rx) = Receiver::start("[::1]:0", Reply::status(200)).await else {
        eprintln!("IPv6 loopback unavailable; skipping");
        return;
    };
    let url = rx.url("/");
    assert!(url.starts_with("http://[::1]:"));
    let r = send(&sender(false, Duration::from_secs(5)), &url).await;
    assert!(r.ssrf_refused, "{r:?}");
    assert_eq!(rx.connections(), 0);
    let r = send(&sender(true, Duration::from_secs(5)), &url).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(rx.connections(), 1);
}

#[tokio::test]
async fn metadata_and_private_literals_refused_without_io() {
    let guarded = sender(false, Duration::from_secs(5));
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1:8080/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://0.0.0.0/",
    ] {
        let t = Instant::now();
        let r = send(&guarded, url).await;
        assert!(r.ssrf_refused, "{url}: {r:?}");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{url} should be refused before any I/O"
        );
    }
}

#[tokio::test]
async fn body_prefix_is_capped_at_4k() {
    let big = "é".repeat(3000); // 6000 bytes
    let rx = Receiver::start("127.0.0.1:0", Reply::status(500).body(&big))
        .await
        .unwrap();
    let r = send(&sender(true, Duration::from_secs(5)), &rx.url("/")).await;
    assert_eq!(r.response_body_prefix.len(), 4096);
    assert_eq!(r.response_body_prefix, "é".repeat(2048));
}

#[tokio::test]
async fn invalid_url_is_a_failed_attempt() {
    let r = send(&sender(false, Duration::from_secs(5)), "not a url").await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert!(r.error.unwrap().starts_with("invalid webhook URL"));
}

// ---- HTTPS receivers ----

/// A sender that trusts `ca` besides the public roots (the SSRF guard lifted: the receivers
/// are on loopback).
fn sender_trusting(ca: &TestCa) -> (tempfile::TempDir, Sender) {
    let dir = tempfile::tempdir().unwrap();
    let s = Sender::new(SenderConfig {
        allow_private_targets: true,
        extra_ca_files: vec![ca.write(dir.path(), "ca")],
        ..Default::default()
    })
    .unwrap();
    (dir, s)
}

#[tokio::test]
async fn https_receivers_get_signed_notifications_over_one_connection() {
    let ca = TestCa::new("receiver CA");
    let rx = Receiver::start_tls(
        "127.0.0.1:0",
        Reply::status(200).body("ok"),
        &ca.issue(&["localhost", "127.0.0.1"]),
    )
    .await
    .unwrap();
    let (_dir, s) = sender_trusting(&ca);
    for host in ["localhost", "127.0.0.1", "localhost", "localhost"] {
        let url = format!("https://{host}:{}/hook", rx.addr.port());
        let r = send(&s, &url).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{host}: {:?}", r.error);
        assert_eq!(r.response_body_prefix, "ok");
    }
    let got = rx.requests();
    assert_eq!(got.len(), 4);
    for req in &got {
        assert_eq!(req.body, BODY.as_bytes());
        let ts = req.headers["x-timestamp"].to_str().unwrap();
        let sig = req.headers["x-signature"].to_str().unwrap();
        assert!(spec_verify(SECRET, ts, sig, &req.body));
    }
    // One connection per host name (the pool is keyed by it), reused by every later delivery.
    assert_eq!(rx.connections(), 2);
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_before_anything_is_sent() {
    let ours = TestCa::new("receiver CA");
    let theirs = TestCa::new("unknown CA");
    let rx = Receiver::start_tls(
        "127.0.0.1:0",
        Reply::status(200),
        &theirs.issue(&["localhost"]),
    )
    .await
    .unwrap();
    let (_dir, s) = sender_trusting(&ours);
    let r = send(&s, &format!("https://localhost:{}/hook", rx.addr.port())).await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert_eq!(r.status, None);
    assert_eq!(
        r.error.as_deref(),
        Some("TLS: certificate not trusted (unknown issuer)")
    );
    assert!(rx.requests().is_empty());

    // Without the extra CA, not even our own CA's receivers are trusted.
    let rx = Receiver::start_tls(
        "127.0.0.1:0",
        Reply::status(200),
        &ours.issue(&["localhost"]),
    )
    .await
    .unwrap();
    let r = send(
        &sender(true, Duration::from_secs(5)),
        &format!("https://localhost:{}/hook", rx.addr.port()),
    )
    .await;
    assert_eq!(
        r.error.as_deref(),
        Some("TLS: certificate not trusted (unknown issuer)")
    );
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn wrong_names_expired_certificates_and_plain_http_ports_are_said_plainly() {
    let ca = TestCa::new("receiver CA");
    let (_dir, s) = sender_trusting(&ca);

    let rx = Receiver::start_tls(
        "127.0.0.1:0",
        Reply::status(200),
        &ca.issue(&["other.example"]),
    )
    .await
    .unwrap();
    let r = send(&s, &format!("https://localhost:{}/", rx.addr.port())).await;
    assert_eq!(
        r.error.as_deref(),
        Some("TLS: certificate is for other.example, not localhost")
    );

    let rx = Receiver::start_tls(
        "127.0.0.1:0",
        Reply::status(200),
        &ca.issue_expired(&["localhost"]),
    )
    .await
    .unwrap();
    let r = send(&s, &format!("https://localhost:{}/", rx.addr.port())).await;
    assert_eq!(r.error.as_deref(), Some("TLS: certificate expired"));

    let plain = Receiver::start("127.0.0.1:0", Reply::status(200))
        .await
        .unwrap();
    let r = send(&s, &format!("https://localhost:{}/", plain.addr.port())).await;
    assert_eq!(r.outcome, Outcome::Retry);
    assert_eq!(
        r.error.as_deref(),
        Some("TLS: localhost did not answer with TLS (is it a plain-HTTP port?)")
    );
    assert!(plain.requests().is_empty());
}

#[tokio::test]
async fn the_ssrf_guard_checks_https_targets_too() {
    let ca = TestCa::new("receiver CA");
    let rx = Receiver::start_tls("127.0.0.1:0", Reply::status(200), &ca.issue(&["localhost"]))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let guarded = Sender::new(SenderConfig {
        extra_ca_files: vec![ca.write(dir.path(), "ca")],
        ..Default::default()
    })
    .unwrap();
    for url in [
        format!("https://localhost:{}/", rx.addr.port()),
        format!("https://127.0.0.1:{}/", rx.addr.port()),
    ] {
        let r = send(&guarded, &url).await;
        assert!(r.ssrf_refused, "{url}: {:?}", r.error);
    }
    assert_eq!(rx.connections(), 0);
}

#[tokio::test]
async fn concurrent_attempts_reuse_their_connections() {
    // As many attempts in flight as the worker allows by default: every round reuses the
    // connections of the first (an idle pool smaller than the concurrency closed the surplus
    // after each round and reopened it, a TLS handshake each over HTTPS).
    const IN_FLIGHT: usize = 32;
    let ca = TestCa::new("receiver CA");
    let rx = Receiver::start_tls("127.0.0.1:0", Reply::status(200), &ca.issue(&["localhost"]))
        .await
        .unwrap();
    let (_dir, s) = sender_trusting(&ca);
    let url = format!("https://localhost:{}/hook", rx.addr.port());
    for _ in 0..5 {
        let round: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (s, url) = (s.clone(), url.clone());
                tokio::spawn(async move { send(&s, &url).await })
            })
            .collect();
        for r in round {
            assert_eq!(r.await.unwrap().outcome, Outcome::Delivered);
        }
    }
    assert_eq!(rx.requests().len(), 5 * IN_FLIGHT);
    assert!(
        rx.connections() <= IN_FLIGHT,
        "{} connections for {} attempts",
        rx.connections(),
        5 * IN_FLIGHT
    );
}
