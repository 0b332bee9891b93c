//! The operator console: a small single-page web app served by the binary itself at
//! `GET /console`, its files embedded at build time (`include_str!`; no Node toolchain, no CDN).
//! It is a client of the public API only: the browser keeps the API key for the tab
//! (sessionStorage) and calls the same documented endpoints as any other client, so it sees
//! exactly what that key may see. Every answer carries a strict Content-Security-Policy (no
//! inline script or style, same-origin only), `nosniff`, and a validator (ETag) with
//! `no-cache`, so a new binary's files are picked up at once and unchanged ones cost a 304.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use crate::error::ApiError;

/// Same origin for everything; nothing inline; no plugins, frames or foreign form targets.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One embedded file: its name under `/console/assets/`, media type and bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $media:expr) => {
        Asset {
            name: $name,
            media_type: $media,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("chart.js", JS),
    asset!("overview.js", JS),
    asset!("webhooks.js", JS),
    asset!("deliveries.js", JS),
    asset!("enrollments.js", JS),
    asset!("prospects.js", JS),
];

/// A strong validator per asset, computed once.
fn etag(index: usize) -> &'static HeaderValue {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body.as_bytes());
                HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
                    .expect("a hex string is a valid header value")
            })
            .collect()
    })[index]
}

/// `GET /console`: the page shell.
pub(crate) async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/assets/{name}`: a script or style sheet of the console.
pub(crate) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers).unwrap_or_else(IntoResponse::into_response)
}

fn serve(name: &str, request: &HeaderMap) -> Result<Response, ApiError> {
    let index = ASSETS
        .iter()
        .position(|a| a.name == name)
        .ok_or(ApiError::NotFound("Not Found"))?;
    let (asset, tag) = (&ASSETS[index], etag(index));
    let fresh = request.get(IF_NONE_MATCH).is_some_and(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii() == tag.as_bytes())
    });
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.media_type)], asset.body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(ETAG, tag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(name: &str, if_none_match: Option<&HeaderValue>) -> Response {
        let mut h = HeaderMap::new();
        if let Some(t) = if_none_match {
            h.insert(IF_NONE_MATCH, t.clone());
        }
        serve(name, &h).unwrap()
    }

    #[test]
    fn assets_carry_csp_nosniff_and_a_validator() {
        let r = get("app.js", None);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_TYPE], JS);
        assert_eq!(r.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[CACHE_CONTROL], "no-cache");
        let tag = r.headers()[ETAG].clone();
        assert_eq!(get("app.js", Some(&tag)).status(), 304);
        let stale = HeaderValue::from_static("\"other\"");
        assert_eq!(get("app.js", Some(&stale)).status(), 200);
        assert!(serve("../lib.rs", &HeaderMap::new()).is_err());
    }

    /// The policy forbids inline code, so no embedded file may contain any: no `<script>` or
    /// `<style>` bodies, no `style=` or `on…=` attributes in the page, no `innerHTML` writes
    /// (text goes through `textContent`, so API data is never parsed as markup).
    #[test]
    fn no_inline_script_or_style_anywhere() {
        assert!(CSP.contains("default-src 'self'") && !CSP.contains("unsafe-inline"));
        let page = ASSETS[0].body;
        assert!(page.contains("<script type=\"module\" src=\"/console/assets/app.js\"></script>"));
        for bad in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
            assert!(!page.contains(bad), "index.html contains {bad}");
        }
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
            ] {
                assert!(!a.body.contains(bad), "{} uses {bad}", a.name);
            }
        }
    }
}
