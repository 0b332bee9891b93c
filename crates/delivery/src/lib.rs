//! Outbound half of webhook delivery (SPEC §4), independent of the database.
//!
//! * [`Sender`] — one signed HTTP POST attempt with a per-attempt timeout, no redirects,
//!   keep-alive pooling and an SSRF guard applied to the resolved addresses at connect time
//!   (and to literal-IP URLs before sending).
//! * [`Outcome`] / [`AttemptResult`] — what one attempt produced, ready to be recorded.
//! * [`RetryPolicy`] — when to try again (schedule, ±jitter, `Retry-After`), or give up.
//! * [`Limiter`] — global and per-webhook concurrency bounds.
//!
//! The store claims due notifications with a lease and records attempts; it calls this crate
//! for the HTTP side, never holding a transaction open across [`Sender::send`].

mod batcher;
pub mod limiter;
pub mod metrics;
pub mod retry;
pub mod sender;
pub mod ssrf;
pub mod worker;

pub use limiter::{Limiter, Permit};
pub use retry::{parse_retry_after, RetryPolicy};
pub use sender::{
    classify_status, signed_headers, AttemptResult, Outcome, Secrets, Sender, SenderConfig,
    SenderError, SignedHeaders, RESPONSE_BODY_PREFIX_BYTES, USER_AGENT,
};
pub use ssrf::{is_forbidden_ip, validate_webhook_url};
pub use worker::{Wake, Worker, WorkerConfig, DATABASE_CONNECTIONS};
