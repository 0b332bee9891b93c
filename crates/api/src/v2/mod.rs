//! The v2 partner API (reference 0.3.29): every answer carries [`V2ResponseContext`]
//! (`time_taken_in_seconds`), built with [`RequestCtx::v2_response_context`]. One module per
//! resource, as for v1.
//!
//! [`V2ResponseContext`]: crate::context::V2ResponseContext
//! [`RequestCtx::v2_response_context`]: crate::context::RequestCtx::v2_response_context

pub(crate) mod enrollments;
pub(crate) mod events;
pub(crate) mod webhooks;

use crate::AppState;
use axum::routing::{get, patch, post};
use axum::Router;

/// The v2 webhook and enrollment routes (`/v2/prospects/events` is with v1's in `router`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/prospects/events/enrollments",
            get(enrollments::list).post(enrollments::create),
        )
        .route(
            "/v2/prospects/events/enrollments/{enrollment_id}",
            patch(enrollments::patch).delete(enrollments::delete),
        )
        .route("/v2/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v2/webhooks/{webhook_id}",
            get(webhooks::get_one)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route(
            "/v2/webhooks/{webhook_id}/rotate_secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/v2/webhooks/{webhook_id}/check_connectivity",
            post(webhooks::check_connectivity),
        )
        .route(
            "/v2/webhooks/{webhook_id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route(
            "/v2/webhooks/{webhook_id}/deliveries/{delivery_id}",
            get(webhooks::get_delivery),
        )
        .route(
            "/v2/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            post(webhooks::retry_delivery),
        )
        .route("/v2/webhooks/{webhook_id}/replay", post(webhooks::replay))
        .route(
            "/v2/webhooks/{webhook_id}/stats",
            get(crate::webhook_reads::stats_v2),
        )
        .route(
            "/v2/webhooks/{webhook_id}/daily",
            get(crate::webhook_reads::daily_v2),
        )
}
