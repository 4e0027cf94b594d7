//! ferrid's integration tests: one binary (link time), one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod apache;
mod authorize;
mod browser;
mod cli;
mod crash;
mod discovery;
mod interop;
mod keys;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod relying_party;
mod replicas;
mod retry;
mod rotation;
mod token;
mod trust;
mod userinfo;
