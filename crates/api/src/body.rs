//! The JSON body extractor: media type (415), size limit (413), then parsing and validation
//! with reference-identical 422 errors.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use domain::validation::{self, BodyError, FieldError};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

/// A request type validated from JSON exactly as the reference does.
pub trait FromJson: Sized {
    fn from_json(v: &Value) -> Result<Self, Vec<FieldError>>;
}

macro_rules! from_json {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(v: &Value) -> Result<Self, Vec<FieldError>> {
                <$t>::from_json(v)
            }
        }
    )*};
}
from_json!(
    validation::EnrollmentAdd,
    validation::EnrollmentUpdate,
    validation::EnrollmentDelete,
    validation::EventsRequest,
    validation::WebhookAdd,
    validation::CheckConnectivity,
    validation::ReplayRequest,
    validation::WebhookUpdate,
    validation::v2::WebhookCreate,
    validation::v2::WebhookPatch,
    validation::v2::WebhookConnectivity,
    validation::v2::EnrollmentCreate,
    validation::v2::EnrollmentPatch
);

pub struct JsonBody<T>(pub T);

impl<T: FromJson> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = req.headers().get(CONTENT_TYPE) {
            if !is_json(ct.to_str().unwrap_or("")) {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let limit = state.config.max_body_bytes;
        if declared_too_large(&req, limit) {
            return Err(ApiError::PayloadTooLarge);
        }
        let bytes = Limited::new(req.into_body(), limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest("There was an error reading the body")
                }
            })?
            .to_bytes();
        let value = validation::parse_body(&bytes).map_err(|e| match e {
            BodyError::Invalid(errors) => ApiError::Validation(errors),
            BodyError::NotUtf8 | BodyError::TooDeep => {
                ApiError::BadRequest("There was an error parsing the body")
            }
            BodyError::TooManyValues => ApiError::PayloadTooLarge,
        })?;
        T::from_json(&value)
            .map(JsonBody)
            .map_err(ApiError::Validation)
    }
}

/// The declared `Content-Length` already exceeds `limit`: answer 413 at once instead of
/// waiting for a body that will be refused anyway.
pub(crate) fn declared_too_large(req: &Request, limit: usize) -> bool {
    use axum::body::HttpBody;
    req.body().size_hint().lower() > limit as u64
}

/// `application/json` or any `application/*+json`, parameters ignored (as FastAPI does).
fn is_json(ct: &str) -> bool {
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.strip_prefix("application/") {
        Some(sub) => sub == "json" || sub.ends_with("+json"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_media_types() {
        assert!(super::is_json("application/json"));
        assert!(super::is_json("Application/JSON; charset=utf-8"));
        assert!(super::is_json("application/merge-patch+json"));
        assert!(!super::is_json("text/plain"));
        assert!(!super::is_json("application/x-www-form-urlencoded"));
        assert!(!super::is_json(""));
    }
}
