//! End-to-end tests over real HTTP. One binary, one module per resource or concern.

mod auth;
mod enrollments;
mod meta;
mod validation;
