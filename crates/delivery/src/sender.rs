//! One signed delivery attempt over HTTP.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use domain::signing::{sign, standard, SigningError};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::redirect;

use crate::retry::parse_retry_after;
use crate::ssrf::{find_refusal, is_forbidden_ip, literal_ip, GuardedResolver, SsrfRefused};

/// `User-Agent` of every attempt.
pub const USER_AGENT: &str = concat!("prospect-events/", env!("CARGO_PKG_VERSION"));
/// How much of a response body is kept for the attempt record.
pub const RESPONSE_BODY_PREFIX_BYTES: usize = 4096;

/// Classification of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the notification is delivered.
    Delivered,
    /// 410 Gone: the caller disables the webhook (the notification stays pending).
    Gone,
    /// Anything else — other statuses (incl. 3xx, never followed), timeouts, connection
    /// errors, SSRF refusals: schedule another attempt with the [`crate::RetryPolicy`]
    /// (passing `AttemptResult::retry_after`, set only for 429/503).
    Retry,
}

/// Outcome for an HTTP status code.
pub fn classify_status(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        410 => Outcome::Gone,
        _ => Outcome::Retry,
    }
}

/// Everything worth recording about one attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub outcome: Outcome,
    /// When the attempt started.
    pub started_at: SystemTime,
    /// HTTP status, if a response was received.
    pub status: Option<u16>,
    /// Milliseconds until the response head arrived (or until the attempt failed).
    pub latency_ms: u64,
    /// First 4 KiB of the response body, lossy UTF-8 (empty without a response).
    pub response_body_prefix: String,
    /// Why the attempt failed (None when delivered): transport error, timeout, SSRF refusal,
    /// redirect not followed, or `"HTTP <status>"`.
    pub error: Option<String>,
    /// Parsed `Retry-After`, only for 429/503 answers that carried one.
    pub retry_after: Option<Duration>,
    /// The target was refused by the SSRF guard (no connection was made).
    pub ssrf_refused: bool,
    /// The attempt hit the per-attempt timeout.
    pub timed_out: bool,
}

/// Per-attempt headers; build them with [`signed_headers`] right before each attempt so the
/// timestamp is fresh (receivers reject timestamps more than 300 s off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub timestamp: i64,
    pub signature: String,
    /// `webhook-signature` (Standard Webhooks): `v1,<sig>` per signing secret; the message id
    /// (`webhook-id`) is the delivery id, the timestamp `timestamp`.
    pub standard_signature: String,
    pub delivery_id: String,
    pub event_id: String,
    /// The webhook's custom `"Name: value"` lines (validated when they were stored).
    pub custom: Vec<String>,
}

/// The secrets an attempt signs with: `X-Signature` with the current one only,
/// `webhook-signature` with it and, during a rotation's grace, the previous one.
#[derive(Debug, Clone, Copy)]
pub struct Secrets<'a> {
    pub current: &'a str,
    pub previous: Option<&'a str>,
}

impl<'a> Secrets<'a> {
    pub fn one(current: &'a str) -> Self {
        Secrets {
            current,
            previous: None,
        }
    }
}

/// Signs `body` at `signed_at` (SPEC §4: `X-Signature` = HMAC-SHA256 over
/// `"{timestamp}.{body}"`, keyed with the URL-safe-base64-decoded secret; plus the Standard
/// Webhooks signatures over `"{delivery_id}.{timestamp}.{body}"`).
pub fn signed_headers(
    secrets: Secrets<'_>,
    delivery_id: &str,
    event_id: &str,
    signed_at: time::OffsetDateTime,
    body: &[u8],
) -> Result<SignedHeaders, SigningError> {
    let now_unix = signed_at.unix_timestamp();
    let mut keys = vec![secrets.current];
    keys.extend(secrets.previous);
    Ok(SignedHeaders {
        timestamp: now_unix,
        signature: sign(secrets.current, now_unix, body)?,
        standard_signature: standard::sign(delivery_id, signed_at, body, &keys)?,
        delivery_id: delivery_id.to_string(),
        event_id: event_id.to_string(),
        custom: Vec::new(),
    })
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Whole-attempt timeout (connect + request + response head + body prefix). Default
    /// [`domain::defaults::DELIVERY_TIMEOUT`] (`--delivery-timeout`).
    pub timeout: Duration,
    /// Connect timeout (capped by `timeout`). Default 5 s.
    pub connect_timeout: Duration,
    /// Lift the SSRF guard (tests, local development).
    pub allow_private_targets: bool,
    /// Idle keep-alive connections kept per host. Default [`crate::limiter::DEFAULT_IN_FLIGHT`], the worker's
    /// concurrency (`--delivery-concurrency`: every attempt in flight may go to one host): with fewer, connections that finish while the pool is full are closed and
    /// the next attempts open new ones (a TCP and, for HTTPS, a TLS handshake each).
    pub pool_max_idle_per_host: usize,
    /// How long idle pooled connections live. Default 60 s.
    pub pool_idle_timeout: Duration,
    /// PEM bundles of extra trusted CAs (receivers behind a private PKI), trusted besides the
    /// web PKI's roots and the system's store. Certificates are always verified.
    pub extra_ca_files: Vec<PathBuf>,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            timeout: domain::defaults::DELIVERY_TIMEOUT,
            connect_timeout: Duration::from_secs(5),
            allow_private_targets: false,
            pool_max_idle_per_host: crate::limiter::DEFAULT_IN_FLIGHT,
            pool_idle_timeout: Duration::from_secs(60),
            extra_ca_files: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("building the HTTP client failed: {0}")]
    Build(#[from] reqwest::Error),
    #[error("webhook TLS trust: {0}")]
    Tls(#[from] tls::TlsSetupError),
}

/// Reqwest-based sender; cheap to clone (shares the connection pool).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    config: SenderConfig,
}

impl Sender {
    pub fn new(config: SenderConfig) -> Result<Self, SenderError> {
        // HTTPS receivers: verified against the web PKI, the system's store and the extra CAs;
        // pooled connections keep their TLS session, so a delivery costs no new handshake.
        let tls = tls::web_client_config(config.extra_ca_files.clone())?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(redirect::Policy::none())
            // A proxy would resolve the target itself, bypassing the guard.
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout.min(config.timeout))
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_idle_timeout(config.pool_idle_timeout)
            .tcp_nodelay(true)
            .user_agent(USER_AGENT);
        if !config.allow_private_targets {
            builder = builder.dns_resolver(GuardedResolver::shared());
        }
        Ok(Sender {
            client: builder.build()?,
            config,
        })
    }

    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Signs `body` with the webhook's secrets as of `signed_at` and POSTs it with the
    /// webhook's `custom` header lines: the one way every notification leaves (worker
    /// deliveries and the connectivity check). Only a secret that cannot sign is an error;
    /// every failure of the attempt is in the [`AttemptResult`].
    #[allow(clippy::too_many_arguments)]
    pub async fn send_signed(
        &self,
        url: &str,
        secrets: Secrets<'_>,
        custom: &[String],
        delivery_id: &str,
        event_id: &str,
        signed_at: time::OffsetDateTime,
        body: Vec<u8>,
    ) -> Result<AttemptResult, SigningError> {
        let mut headers = signed_headers(secrets, delivery_id, event_id, signed_at, &body)?;
        headers.custom = custom.to_vec();
        Ok(self.send(url, body, &headers).await)
    }

    /// POSTs `body` to `url` with the signed headers; never panics, never returns an error:
    /// every failure is folded into the [`AttemptResult`]. Stages: check the target → build
    /// the headers → exchange (bounded by the timeout) → classify the answer or the failure.
    pub async fn send(
        &self,
        url: &str,
        body: impl Into<Bytes>,
        headers: &SignedHeaders,
    ) -> AttemptResult {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let prepared = self
            .target(url)
            .and_then(|url| Ok((url, header_map(headers)?)));
        let (url, hm) = match prepared {
            Ok(p) => p,
            Err(failure) => return failure.into_result(started_at, start),
        };
        let timeout = self.config.timeout;
        // reqwest enforces the timeout too; this outer bound is a safety net.
        let exchanged = tokio::time::timeout(
            timeout + Duration::from_millis(50),
            self.exchange(url, hm, body.into(), start),
        )
        .await;
        match exchanged {
            Ok(Ok(answer)) => answer.into_result(started_at, timeout),
            Ok(Err(e)) => Failure::transport(&e, timeout).into_result(started_at, start),
            Err(_) => Failure::timeout(timeout).into_result(started_at, start),
        }
    }

    /// The webhook URL, parsed; refused here when it is not absolute http(s) or is a forbidden
    /// literal IP (reqwest does not run the guarded resolver for literal IPs).
    fn target(&self, url: &str) -> Result<reqwest::Url, Failure> {
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            Ok(_) => {
                return Err(Failure::plain(format!(
                    "invalid webhook URL (not absolute http/https): {url}"
                )))
            }
            Err(e) => return Err(Failure::plain(format!("invalid webhook URL: {e}"))),
        };
        if !self.config.allow_private_targets {
            if let Some(ip) = literal_ip(&parsed).filter(|ip| is_forbidden_ip(*ip)) {
                let r = SsrfRefused {
                    host: ip.to_string(),
                    addrs: vec![ip],
                };
                tracing::warn!(%ip, "webhook target refused by SSRF guard");
                return Err(Failure::ssrf(r.to_string()));
            }
        }
        Ok(parsed)
    }

    /// POSTs and reads the response head and the start of its body.
    async fn exchange(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        body: Bytes,
        start: Instant,
    ) -> Result<Answer, reqwest::Error> {
        let mut resp = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let latency_ms = start.elapsed().as_millis() as u64;
        let status = resp.status().as_u16();
        let retry_after = match status {
            429 | 503 => resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
            _ => None,
        };
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let (prefix, body_error) = read_prefix(&mut resp).await;
        Ok(Answer {
            status,
            latency_ms,
            retry_after,
            location,
            prefix,
            body_error,
        })
    }
}

/// The request headers of one attempt: the webhook's custom lines, then JSON content type
/// and the signed headers (set last, so no custom line can replace them).
fn header_map(headers: &SignedHeaders) -> Result<HeaderMap, Failure> {
    let mut hm = HeaderMap::new();
    for line in &headers.custom {
        let (name, value) = custom_header(line)?;
        hm.append(name, value);
    }
    hm.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    hm.insert("x-timestamp", HeaderValue::from(headers.timestamp));
    hm.insert(
        standard::HEADER_TIMESTAMP,
        HeaderValue::from(headers.timestamp),
    );
    for (name, value) in [
        ("x-signature", headers.signature.as_str()),
        ("x-delivery-id", headers.delivery_id.as_str()),
        ("x-event-id", headers.event_id.as_str()),
        (standard::HEADER_ID, headers.delivery_id.as_str()),
        (
            standard::HEADER_SIGNATURE,
            headers.standard_signature.as_str(),
        ),
    ] {
        let value = HeaderValue::from_str(value)
            .map_err(|_| Failure::plain(format!("invalid {name} header value")))?;
        hm.insert(name, value);
    }
    Ok(hm)
}

/// One `"Name: value"` line as a header (the value trimmed of surrounding blanks).
fn custom_header(line: &str) -> Result<(reqwest::header::HeaderName, HeaderValue), Failure> {
    let bad = || Failure::plain("invalid custom header line stored for the webhook".to_string());
    let (name, value) = line.split_once(':').ok_or_else(bad)?;
    let name =
        reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

/// Up to [`RESPONSE_BODY_PREFIX_BYTES`] of the body, and the error that cut it short if any.
async fn read_prefix(resp: &mut reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut prefix: Vec<u8> = Vec::new();
    while prefix.len() < RESPONSE_BODY_PREFIX_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(RESPONSE_BODY_PREFIX_BYTES - prefix.len());
                prefix.extend_from_slice(&chunk[..take]);
            }
            Ok(None) => break,
            Err(e) => return (prefix, Some(e)),
        }
    }
    (prefix, None)
}

/// What the receiver answered.
struct Answer {
    status: u16,
    latency_ms: u64,
    retry_after: Option<Duration>,
    location: Option<String>,
    prefix: Vec<u8>,
    body_error: Option<reqwest::Error>,
}

impl Answer {
    fn into_result(self, started_at: SystemTime, timeout: Duration) -> AttemptResult {
        let status = self.status;
        let outcome = classify_status(status);
        // A 2xx whose body could not be read completely is still delivered: the receiver
        // accepted the notification.
        let error = match outcome {
            Outcome::Delivered => None,
            _ if (300..400).contains(&status) => Some(match self.location {
                Some(l) => format!("redirect not followed: HTTP {status} to {l}"),
                None => format!("redirect not followed: HTTP {status}"),
            }),
            _ => Some(match &self.body_error {
                Some(e) if e.is_timeout() => {
                    format!("HTTP {status}; body: {}", timeout_message(timeout))
                }
                _ => format!("HTTP {status}"),
            }),
        };
        AttemptResult {
            outcome,
            started_at,
            status: Some(status),
            latency_ms: self.latency_ms,
            response_body_prefix: String::from_utf8_lossy(&self.prefix).into_owned(),
            error,
            retry_after: self.retry_after,
            ssrf_refused: false,
            timed_out: false,
        }
    }
}

/// An attempt that got no answer: why, and whether the guard or the timeout stopped it.
struct Failure {
    error: String,
    ssrf_refused: bool,
    timed_out: bool,
}

impl Failure {
    fn plain(error: String) -> Self {
        Self {
            error,
            ssrf_refused: false,
            timed_out: false,
        }
    }

    fn ssrf(error: String) -> Self {
        Self {
            ssrf_refused: true,
            ..Self::plain(error)
        }
    }

    fn timeout(timeout: Duration) -> Self {
        Self {
            timed_out: true,
            ..Self::plain(timeout_message(timeout))
        }
    }

    /// Names what failed: the SSRF guard, the timeout, the TLS handshake, or the transport.
    fn transport(e: &reqwest::Error, timeout: Duration) -> Self {
        if let Some(r) = find_refusal(e) {
            return Self::ssrf(r.to_string());
        }
        if e.is_timeout() {
            return Self::timeout(timeout);
        }
        if let Some(error) = tls::find_tls_error(e) {
            // The name the certificate had to match: the URL's host.
            let host = e.url().and_then(|u| u.host_str()).unwrap_or_default();
            return Self::plain(tls::HandshakeFailure { error, host }.to_string());
        }
        Self::plain(describe(e))
    }

    fn into_result(self, started_at: SystemTime, start: Instant) -> AttemptResult {
        AttemptResult {
            outcome: Outcome::Retry,
            started_at,
            status: None,
            latency_ms: start.elapsed().as_millis() as u64,
            response_body_prefix: String::new(),
            error: Some(self.error),
            retry_after: None,
            ssrf_refused: self.ssrf_refused,
            timed_out: self.timed_out,
        }
    }
}

fn timeout_message(timeout: Duration) -> String {
    format!("timeout after {} ms", timeout.as_millis())
}

/// "connection error: a: b: c" from the error chain, without reqwest's URL noise repeated.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection error"
    } else if e.is_request() || e.is_body() {
        "request error"
    } else {
        "error"
    };
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    format!("{kind}: {}", parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        assert_eq!(classify_status(200), Outcome::Delivered);
        assert_eq!(classify_status(204), Outcome::Delivered);
        assert_eq!(classify_status(299), Outcome::Delivered);
        assert_eq!(classify_status(410), Outcome::Gone);
        for s in [100, 301, 302, 307, 308, 400, 404, 429, 500, 503] {
            assert_eq!(classify_status(s), Outcome::Retry, "{s}");
        }
    }

    #[test]
    fn headers_are_signed_per_attempt() {
        let secret = domain::signing::generate_secret([1; 32]);
        let at = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let h = signed_headers(Secrets::one(&secret), "d1", "e1", at(100), b"{}").unwrap();
        assert_eq!(h.timestamp, 100);
        assert!(domain::signing::verify(
            &secret,
            "100",
            &h.signature,
            b"{}",
            100,
            300
        ));
        let h2 = signed_headers(Secrets::one(&secret), "d1", "e1", at(101), b"{}").unwrap();
        assert_ne!(h.signature, h2.signature);
        assert!(signed_headers(Secrets::one("!!"), "d", "e", at(1), b"").is_err());
    }

    /// `webhook-signature` carries one signature per secret: the current one only, or during a
    /// rotation's grace also the previous one, each verifiable alone; `X-Signature` is always
    /// the current secret's.
    #[test]
    fn standard_signatures_cover_the_previous_secret_during_the_grace() {
        let (new, old) = (
            domain::signing::generate_secret([1; 32]),
            domain::signing::generate_secret([2; 32]),
        );
        let at = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let tol = Duration::from_secs(300);
        let check = |h: &SignedHeaders, key: &str| {
            standard::verify(
                key,
                "d1",
                "1700000000",
                &h.standard_signature,
                b"{}",
                at,
                tol,
            )
        };
        let one = signed_headers(Secrets::one(&new), "d1", "e1", at, b"{}").unwrap();
        assert_eq!(one.standard_signature.split(' ').count(), 1);
        assert!(check(&one, &new) && !check(&one, &old));
        let both = Secrets {
            current: &new,
            previous: Some(&old),
        };
        let two = signed_headers(both, "d1", "e1", at, b"{}").unwrap();
        assert_eq!(two.standard_signature.split(' ').count(), 2);
        assert!(check(&two, &new) && check(&two, &old));
        assert_eq!(two.signature, one.signature);
    }

    /// Custom lines go out as headers; ours are set after them.
    #[test]
    fn custom_header_lines_become_headers() {
        let secret = domain::signing::generate_secret([1; 32]);
        let at = time::OffsetDateTime::from_unix_timestamp(100).unwrap();
        let mut h = signed_headers(Secrets::one(&secret), "d1", "e1", at, b"{}").unwrap();
        h.custom = vec![
            "X-Tenant-Route: blue".into(),
            "Authorization:  Bearer t ".into(),
        ];
        let hm = header_map(&h).ok().expect("valid lines");
        assert_eq!(hm["x-tenant-route"], "blue");
        assert_eq!(hm["authorization"], "Bearer t");
        assert_eq!(hm["webhook-id"], "d1");
        assert_eq!(hm["webhook-timestamp"], "100");
        assert_eq!(hm["content-type"], "application/json");
        h.custom = vec!["no colon".into()];
        assert!(header_map(&h).is_err());
    }

    #[test]
    fn user_agent_has_version() {
        assert!(USER_AGENT.starts_with("prospect-events/0."));
    }
}
