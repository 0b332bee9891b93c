//! The v2 partner API (reference 0.3.29): every answer carries [`V2ResponseContext`]
//! (`time_taken_in_seconds`), built with [`RequestCtx::v2_response_context`]. One module per
//! resource, as for v1.
//!
//! [`V2ResponseContext`]: crate::context::V2ResponseContext
//! [`RequestCtx::v2_response_context`]: crate::context::RequestCtx::v2_response_context

pub(crate) mod enrollments;
pub(crate) mod events;
pub(crate) mod webhooks;
