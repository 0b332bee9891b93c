//! `POST /v1/prospects/events` (and the lookup `POST /v2/prospects/events` shares): events of up to 40 prospects, newest first, for any prospect
//! (enrolled or not). Without `timestamp_from` the window is the last 3 months.

use crate::body::JsonBody;
use crate::context::{RequestCtx, ResponseContext};
use crate::error::ApiError;
use crate::{AppState, Caller};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use domain::snapshot::format_timestamp;
use domain::validation::EventsRequest;
use serde::Serialize;
use store::{EventQuery, StoredEvent};
use time::OffsetDateTime;

#[derive(Serialize)]
pub(crate) struct EventsOut {
    response_context: ResponseContext,
    output_events: Vec<EventOut>,
}

/// One event of a fetch answer (v1's untyped output and v2's `ProspectsEventOutput[Any]`
/// have the same fields in the same order).
#[derive(Serialize)]
pub(crate) struct EventOut {
    event_name: &'static str,
    event_time: String,
    event_id: String,
    data: Box<serde_json::value::RawValue>,
    prospect_id: String,
}

impl From<StoredEvent> for EventOut {
    fn from(e: StoredEvent) -> Self {
        EventOut {
            event_name: e.event_type.as_str(),
            event_time: format_timestamp(e.event_time),
            event_id: e.event_id,
            data: e.data,
            prospect_id: e.prospect_id.to_string(),
        }
    }
}

pub(crate) async fn fetch(
    State(state): State<AppState>,
    ctx: RequestCtx,
    _caller: Caller,
    JsonBody(req): JsonBody<EventsRequest>,
) -> Result<Response, ApiError> {
    let (status, output_events) = find(&state, req).await?;
    events_answer(output_events, |output_events| EventsOut {
        response_context: ctx.response_context(status),
        output_events,
    })
}

/// The JSON response `wrap` makes of `events` (v1's and v2's answers differ only in their
/// context), serialized into a buffer sized from the events up front: axum's `Json` starts at
/// 128 bytes and doubles, so a 20-id answer (~55 kB) was copied nine times on its way out.
pub(crate) fn events_answer<T: Serialize>(
    events: Vec<EventOut>,
    wrap: impl FnOnce(Vec<EventOut>) -> T,
) -> Result<Response, ApiError> {
    // Each event's `data` plus its other fields (~150 bytes), plus the response context.
    let size = 512
        + events
            .iter()
            .map(|e| e.data.get().len() + 160)
            .sum::<usize>();
    let mut body = Vec::with_capacity(size);
    serde_json::to_writer(&mut body, &wrap(events))
        .map_err(|e| ApiError::Internal(format!("serializing the answer: {e}")))?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// The events a fetch asks for, newest first, and the answer's `request_status` (`miss` when
/// there are none). Shared by `POST /v1/prospects/events` and `POST /v2/prospects/events`.
pub(crate) async fn find(
    state: &AppState,
    req: EventsRequest,
) -> Result<(&'static str, Vec<EventOut>), ApiError> {
    let from = req
        .timestamp_from
        .unwrap_or_else(|| three_months_before(state.clock.now()));
    let events = state
        .store
        .query_events(&EventQuery {
            prospect_ids: req.prospect_ids,
            event_types: req.event_types,
            from: domain::instant::window_start(from),
            to: req.timestamp_to,
        })
        .await?;
    let status = if events.is_empty() { "miss" } else { "success" };
    Ok((status, events.into_iter().map(EventOut::from).collect()))
}

/// The same instant three calendar months earlier (day clamped to the month's length).
fn three_months_before(t: OffsetDateTime) -> OffsetDateTime {
    let d = t.date();
    let (mut y, mut m) = (d.year(), d.month() as i32 - 3);
    if m < 1 {
        m += 12;
        y -= 1;
    }
    let month = time::Month::try_from(m as u8).unwrap_or(time::Month::January);
    let day = d.day().min(month.length(y));
    time::Date::from_calendar_date(y, month, day)
        .map(|nd| t.replace_date(nd))
        .unwrap_or(t - time::Duration::days(92))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn three_months_clamps_days() {
        assert_eq!(
            three_months_before(datetime!(2026-05-31 10:00 UTC)),
            datetime!(2026-02-28 10:00 UTC)
        );
        assert_eq!(
            three_months_before(datetime!(2026-02-15 00:00 UTC)),
            datetime!(2025-11-15 00:00 UTC)
        );
        assert_eq!(
            three_months_before(datetime!(2024-05-31 00:00 UTC)),
            datetime!(2024-02-29 00:00 UTC)
        );
    }
}
