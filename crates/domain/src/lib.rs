//! Pure domain of prospect-events: identifiers, event types, request validation with
//! reference-identical (pydantic v2) errors, and later change detection and signing.
//! Nothing here performs I/O, reads the clock or touches a database.

pub mod clock;
pub mod defaults;
pub mod detect;
pub mod ids;
pub mod instant;
pub mod keys;
pub mod notification;
pub mod signing;
pub mod snapshot;
pub mod validation;

pub use ids::{event_mask, EnrollmentId, EventType, PartnerId, ProspectId, TenantId};
