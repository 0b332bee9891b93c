//! `POST /v1/admin/prospects/snapshots`: snapshot ingestion for admin keys. The body (NDJSON, or
//! CSV with `Content-Type: text/csv`) is streamed through the same pipeline as the CLI, so its
//! size does not bound memory; the response lists every rejected line (up to a cap).

use crate::context::{RequestCtx, ResponseContext};
use crate::error::ApiError;
use crate::{AppState, Caller};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::Json;
use futures_util::TryStreamExt;
use http_body_util::{BodyDataStream, Limited};
use ingest::{Format, LineError, Summary};
use serde::Serialize;

/// Rejected lines listed in one response; the count in `summary.rejected` is always complete.
const MAX_LISTED_ERRORS: usize = 10_000;

#[derive(Serialize)]
pub(crate) struct IngestOut {
    response_context: ResponseContext,
    summary: Summary,
    errors: Vec<LineError>,
    errors_truncated: bool,
}

pub(crate) async fn ingest_snapshots(
    State(state): State<AppState>,
    ctx: RequestCtx,
    caller: Caller,
    req: Request,
) -> Result<Json<IngestOut>, ApiError> {
    if !caller.admin {
        return Err(ApiError::Forbidden(
            "This endpoint requires an admin API key",
        ));
    }
    let format = upload_format(&req)?;
    let limit = state.config.max_ingest_bytes;
    if crate::body::declared_too_large(&req, limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    let reader = body_reader(req, limit);
    let opts = ingest::Options {
        anniversary_lead_days: state.config.anniversary_lead_days,
        max_line_bytes: state.config.max_line_bytes,
        event_retention: state.config.event_retention,
        ..Default::default()
    };
    let mut errors = Vec::new();
    let mut truncated = false;
    let summary = ingest::ingest(
        &state.store,
        Box::new(reader),
        format,
        &opts,
        |e| {
            if errors.len() < MAX_LISTED_ERRORS {
                errors.push(e.clone());
            } else {
                truncated = true;
            }
        },
        |_| {},
    )
    .await
    .map_err(ingest_error)?;
    if summary.notifications_queued > 0 {
        if let Some(wake) = &state.wake {
            wake.notify();
        }
    }
    Ok(Json(IngestOut {
        response_context: ctx.response_context("success"),
        summary,
        errors,
        errors_truncated: truncated,
    }))
}

/// The snapshot format named by `Content-Type` (NDJSON without one).
fn upload_format(req: &Request) -> Result<Format, ApiError> {
    let Some(ct) = req.headers().get(CONTENT_TYPE) else {
        return Ok(Format::Ndjson);
    };
    let mime = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/json"
        | "text/plain"
        | "" => Ok(Format::Ndjson),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// The upload as a blocking reader for the ingestion pipeline, cut at `limit` bytes (an
/// over-limit upload reads as a `FileTooLarge` error).
fn body_reader(req: Request, limit: usize) -> impl std::io::Read + Send {
    let stream = BodyDataStream::new(Limited::new(req.into_body(), limit)).map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "upload over the size limit",
            )
        } else {
            std::io::Error::other(e.to_string())
        }
    });
    tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream))
}

fn ingest_error(e: ingest::IngestError) -> ApiError {
    match e {
        ingest::IngestError::Store(s) => ApiError::from(s),
        ingest::IngestError::Io(io) if io.kind() == std::io::ErrorKind::FileTooLarge => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::BadRequestOwned(other.to_string()),
    }
}
