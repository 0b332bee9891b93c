//! `Idempotency-Key` (beyond the reference): a POST, PATCH or DELETE of the v1 API carrying
//! this header is executed at most once per (tenant, partner, key); a retry of the same request
//! (method, path, body) gets the first answer again (`Idempotent-Replayed: true`), a different
//! request with the same key 422, a duplicate arriving while the first runs 409. The rule and
//! the fencing of the writes live in `store::idempotency` (docs/decisions.md D41); this layer
//! only reads the request, asks the store, and records the answer.

use crate::error::{ApiError, ErrorBody};
use crate::{AppState, Caller};
use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use sha2::{Digest, Sha256};
use store::idempotency::IDEMPOTENCY_KEY_MAX_LEN;
use store::{IdemAnswer, IdemBegin, IdemFence};

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The snapshot upload streams up to 1 GiB and is idempotent by content (deterministic event
/// ids); it is not buffered for a key.
const EXEMPT: &str = "/v1/admin/prospects/snapshots";

pub(crate) async fn idempotency(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !applies(&req) {
        return next.run(req).await;
    }
    let key = match idempotency_key(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(req).await,
        Err(e) => return e.into_response(),
    };
    let (mut parts, body) = req.into_parts();
    // Authentication comes first (D1); without a caller the handler answers 401 itself.
    let Ok(caller) = Caller::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let bytes = match Limited::new(body, state.config.max_body_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return ApiError::PayloadTooLarge.into_response()
        }
        Err(_) => {
            return ApiError::BadRequest("There was an error reading the body").into_response()
        }
    };
    let fingerprint = fingerprint(&parts.method, parts.uri.path_and_query(), &bytes);
    let req = Request::from_parts(parts, Body::from(bytes));
    let begun = state
        .store
        .idempotency_begin(&caller.scope, &key, &fingerprint, state.clock.now())
        .await;
    match begun {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdemBegin::Execute(fence)) => execute(&state, fence, req, next).await,
        Ok(IdemBegin::Replay(answer)) => replay(answer),
        Ok(IdemBegin::Mismatch) => ApiError::Unprocessable(
            "This Idempotency-Key was already used for a different request (method, path or body)",
        )
        .into_response(),
        Ok(IdemBegin::InProgress) => {
            let mut resp = ApiError::Conflict(
                "A request with this Idempotency-Key is in progress; retry later",
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
            resp
        }
        Ok(IdemBegin::ExecutedWithoutAnswer) => ApiError::Conflict(
            "The request with this Idempotency-Key was executed but its answer was not recorded; it will not be executed again",
        )
        .into_response(),
    }
}

/// POST, PATCH and DELETE of the routed partner API (v1 and v2), except the streamed snapshot upload.
fn applies(req: &Request) -> bool {
    let write = matches!(*req.method(), Method::POST | Method::PATCH | Method::DELETE);
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    write && matches!(route, Some(r) if crate::context::is_partner_api(r) && r != EXEMPT)
}

/// The header's value: 1 to 255 printable ASCII characters (else 400), or None when absent.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let ok = (1..=IDEMPOTENCY_KEY_MAX_LEN).contains(&v.len())
        && v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b));
    match v.to_str() {
        Ok(s) if ok => Ok(Some(s.to_string())),
        _ => Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )),
    }
}

/// SHA-256 over method, path with query, and body: what "the same request" means.
fn fingerprint(
    method: &Method,
    path: Option<&axum::http::uri::PathAndQuery>,
    body: &[u8],
) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(path.map(|p| p.as_str()).unwrap_or("").as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().to_vec()
}

/// Runs the handler with its writes fenced by the reservation, then stores its answer (2xx and
/// 4xx; a 5xx releases the key so that a retry executes, unless the write had committed).
async fn execute(state: &AppState, fence: IdemFence, req: Request, next: Next) -> Response {
    let resp = store::idempotency::fenced(fence.clone(), next.run(req)).await;
    let status = resp.status();
    if status.is_server_error() {
        if let Err(e) = state.store.idempotency_release(&fence).await {
            // The reservation then ends with its lease (D41): nothing is lost or doubled.
            tracing::warn!(error = %e, "releasing an idempotency key failed");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::Internal(format!("reading a response body: {e}")).into_response()
        }
    };
    let answer = match parts.extensions.get::<ErrorBody>() {
        Some(err) => IdemAnswer {
            status: status.as_u16(),
            detail: true,
            body: err.detail.clone().into_bytes(),
        },
        None => IdemAnswer {
            status: status.as_u16(),
            detail: false,
            body: bytes.to_vec(),
        },
    };
    match state.store.idempotency_finish(&fence, &answer).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("idempotency key taken over before its answer was stored"),
        // The answer still goes out; a retry learns the request was executed (D41).
        Err(e) => tracing::warn!(error = %e, "storing an idempotent answer failed"),
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The stored answer again: a body as first sent, or an error detail rendered with this
/// request's correlation id.
fn replay(answer: IdemAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut resp = if answer.detail {
        let mut r = status.into_response();
        r.extensions_mut().insert(ErrorBody {
            detail: String::from_utf8_lossy(&answer.body).into_owned(),
            log: None,
        });
        r
    } else {
        let mut r = (status, answer.body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    resp.headers_mut()
        .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        let mut h = HeaderMap::new();
        assert!(matches!(idempotency_key(&h), Ok(None)));
        h.insert("idempotency-key", HeaderValue::from_static("a1-B_2"));
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("a1-B_2"));
        let long = "k".repeat(IDEMPOTENCY_KEY_MAX_LEN);
        h.insert("idempotency-key", HeaderValue::from_str(&long).unwrap());
        assert!(idempotency_key(&h).is_ok());
        let too_long = "k".repeat(IDEMPOTENCY_KEY_MAX_LEN + 1);
        h.insert("idempotency-key", HeaderValue::from_str(&too_long).unwrap());
        assert!(idempotency_key(&h).is_err());
        h.insert("idempotency-key", HeaderValue::from_static(""));
        assert!(idempotency_key(&h).is_err());
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(idempotency_key(&h).is_err());
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let p = |s: &'static str| Some(axum::http::uri::PathAndQuery::from_static(s));
        let a = fingerprint(&Method::POST, p("/v1/x").as_ref(), b"{}");
        assert_eq!(a, fingerprint(&Method::POST, p("/v1/x").as_ref(), b"{}"));
        assert_ne!(a, fingerprint(&Method::PATCH, p("/v1/x").as_ref(), b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, p("/v1/y").as_ref(), b"{}"));
        assert_ne!(a, fingerprint(&Method::POST, p("/v1/x").as_ref(), b"{ }"));
    }
}
