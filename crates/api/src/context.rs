//! Wire conventions applied to every request: correlation id (reused when the client sends a
//! valid one), per-key rate limit and its headers, rendering of error bodies with the
//! correlation id, metrics and one structured log line per request.

use crate::error::ErrorBody;
use crate::ratelimit::Decision;
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub(crate) static X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
pub(crate) static API_KEY: HeaderName = HeaderName::from_static("api_key");

/// Per-request context: correlation id, start time, and what auth learned (for the log line).
#[derive(Clone)]
pub struct RequestCtx {
    pub correlation_id: Arc<str>,
    pub started: Instant,
    pub(crate) partner: Arc<OnceLock<String>>,
}

/// SHA-256 of the raw `api_key` header, computed once per request.
#[derive(Clone, Copy)]
pub(crate) struct KeyHash(pub [u8; 32]);

/// v1's `ResponseContext` (the reference spells its duration `time_took_in_seconds`).
#[derive(Serialize)]
pub struct ResponseContext {
    pub correlation_id: Arc<str>,
    pub request_status: &'static str,
    pub time_took_in_seconds: f64,
}

/// v2's `V2ResponseContext`: the same three facts, the duration spelt `time_taken_in_seconds`
/// (reference 0.3.29). Every `/v2/...` answer carries this one, never v1's.
#[derive(Serialize)]
pub struct V2ResponseContext {
    pub correlation_id: Arc<str>,
    pub request_status: &'static str,
    pub time_taken_in_seconds: f64,
}

impl RequestCtx {
    /// The v1 `response_context` of a 2xx body (`request_status`: `success`, `miss` or
    /// `failure`).
    pub fn response_context(&self, request_status: &'static str) -> ResponseContext {
        ResponseContext {
            correlation_id: self.correlation_id.clone(),
            request_status,
            time_took_in_seconds: self.elapsed_seconds(),
        }
    }

    /// The v2 `response_context` of a 2xx body (`request_status` as for v1).
    pub fn v2_response_context(&self, request_status: &'static str) -> V2ResponseContext {
        V2ResponseContext {
            correlation_id: self.correlation_id.clone(),
            request_status,
            time_taken_in_seconds: self.elapsed_seconds(),
        }
    }

    fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// The partner API proper (`/v1/...` and `/v2/...`): rate-limited, and its writes take
/// `Idempotency-Key`. Health, meta and unmatched paths are neither.
pub(crate) fn is_partner_api(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/v2/")
}

impl<S: Send + Sync> FromRequestParts<S> for RequestCtx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestCtx>()
            .cloned()
            .unwrap_or_else(|| RequestCtx {
                correlation_id: new_correlation_id().into(),
                started: Instant::now(),
                partner: Default::default(),
            }))
    }
}

pub(crate) fn new_correlation_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn client_correlation_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&X_CORRELATION_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| v.to_string())
}

/// Every request: correlation id → key hash and rate limit → the handler → errors rendered in
/// the reference's shape → correlation and rate-limit headers → metrics and the access log.
pub(crate) async fn wire_conventions(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let correlation_id: Arc<str> = client_correlation_id(req.headers())
        .unwrap_or_else(new_correlation_id)
        .into();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let method = req.method().clone();
    let key_hash = req
        .headers()
        .get(&API_KEY)
        .map(|v| domain::keys::hash_key(v.as_bytes()));
    if let Some(h) = key_hash {
        req.extensions_mut().insert(KeyHash(h));
    }
    let decision = rate_limit(&state, &req, key_hash);

    let ctx = RequestCtx {
        correlation_id: correlation_id.clone(),
        started,
        partner: Default::default(),
    };
    req.extensions_mut().insert(ctx.clone());

    let resp = match &decision {
        Some(d) if !d.allowed => rate_limited(d),
        _ => next.run(req).await,
    };
    let mut resp = render_error(resp, &correlation_id);
    stamp_headers(&mut resp, &correlation_id, decision.as_ref());

    let status = resp.status();
    let elapsed = started.elapsed();
    let route_label = route.as_deref().unwrap_or("unmatched");
    state
        .metrics
        .observe(route_label, method.as_str(), status.as_u16(), elapsed);
    let partner = ctx.partner.get().map(String::as_str).unwrap_or("-");
    if status.is_server_error() {
        tracing::warn!(http.method = %method, http.route = route_label, http.status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0, correlation_id = %correlation_id, partner, "request");
    } else {
        tracing::info!(http.method = %method, http.route = route_label, http.status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0, correlation_id = %correlation_id, partner, "request");
    }
    resp
}

/// The limiter's decision for this request, by key (or, without one, by client address). The
/// limiter guards the API proper; health and meta endpoints are not limited (None).
fn rate_limit(state: &AppState, req: &Request, key_hash: Option<[u8; 32]>) -> Option<Decision> {
    let limited = is_partner_api(req.uri().path());
    if !(limited && state.limiter.enabled()) {
        return None;
    }
    let bucket = match key_hash {
        Some(h) => h,
        None => {
            let ip = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default();
            domain::keys::hash_key(ip.as_bytes())
        }
    };
    Some(state.limiter.check(&bucket))
}

/// An error a handler returned becomes `{"detail", "correlation_id"}`, its internal cause
/// logged once here; the handler's other headers are kept.
fn render_error(mut resp: Response, correlation_id: &str) -> Response {
    let Some(err) = resp.extensions_mut().remove::<ErrorBody>() else {
        return resp;
    };
    if let Some(internal) = &err.log {
        tracing::error!(correlation_id = %correlation_id, error = %internal, "request failed");
    }
    let status = resp.status();
    let mut headers = std::mem::take(resp.headers_mut());
    headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = serde_json::json!({"detail": err.detail, "correlation_id": correlation_id});
    let mut resp = (status, axum::Json(body)).into_response();
    for (k, v) in headers.iter() {
        if k != axum::http::header::CONTENT_TYPE {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
    }
    resp
}

fn stamp_headers(resp: &mut Response, correlation_id: &str, decision: Option<&Decision>) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(correlation_id) {
        h.insert(X_CORRELATION_ID.clone(), v);
    }
    if let Some(d) = decision {
        h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_unix));
    }
}

fn rate_limited(d: &Decision) -> Response {
    let body = serde_json::json!({
        "error": "rate_limit_exceeded",
        "message": format!("API rate limit exceeded. Please retry after {} seconds.", d.retry_after),
        "retry_after": d.retry_after,
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(d.retry_after),
    );
    resp
}
