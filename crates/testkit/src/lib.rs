//! Test support shared by the workspace's test suites (a dev-dependency only; nothing here ships).
//!
//! # Layout
//! - [`pg`]: PostgreSQL for tests — the server of `SDX_TEST_DATABASE_URL` or a throw-away cluster started once per
//!   test binary and removed with it, and a fresh schema per test.
#![forbid(unsafe_code)]

pub mod pg;
