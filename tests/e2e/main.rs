//! End-to-end tests over real HTTP. One binary, one module per resource or concern.

mod auth;
mod connections;
mod console;
mod console_api;
mod enrollments;
mod events;
mod graceful;
mod idempotency;
mod ingest_cli;
mod ingest_limits;
mod memory;
mod meta;
mod replicas;
mod serve_crash;
mod tls;
mod v2_events;
mod v2_webhooks;
mod validation;
mod webhooks;
