//! End-to-end tests over real HTTP. One binary, one module per resource or concern.

mod auth;
mod enrollments;
mod events;
mod graceful;
mod idempotency;
mod ingest_cli;
mod meta;
mod replicas;
mod serve_crash;
mod validation;
mod webhooks;
