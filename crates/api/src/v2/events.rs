//! `POST /v2/prospects/events`: the v1 lookup (same request schema `ProspectsEventsRequest`,
//! same window and order) with v2's typed answer `V2ProspectsFetchEventsResponse`.

use crate::body::JsonBody;
use crate::context::{RequestCtx, V2ResponseContext};
use crate::error::ApiError;
use crate::events::{events_answer, find, EventOut};
use crate::{AppState, Caller};
use axum::extract::State;
use axum::response::Response;
use domain::validation::EventsRequest;
use serde::Serialize;

/// `V2ProspectsFetchEventsResponse`: `output_events` items are `ProspectsEventOutput[Any]`
/// (`event_name`, `event_time`, `event_id`, `data`, `prospect_id`).
#[derive(Serialize)]
pub(crate) struct V2ProspectsFetchEventsResponse {
    response_context: V2ResponseContext,
    output_events: Vec<EventOut>,
}

pub(crate) async fn fetch(
    State(state): State<AppState>,
    ctx: RequestCtx,
    _caller: Caller,
    JsonBody(req): JsonBody<EventsRequest>,
) -> Result<Response, ApiError> {
    let (status, output_events) = find(&state, req).await?;
    events_answer(output_events, |output_events| {
        V2ProspectsFetchEventsResponse {
            response_context: ctx.v2_response_context(status),
            output_events,
        }
    })
}
