//! ferrid: a standalone OAuth 2.0 / OpenID Connect identity provider.
//!
//! # Layers
//!
//! Each layer may use the ones below it, never those above; `app` alone wires them all.
//!
//! ```text
//!   main.rs ─▶ cli ─────────────────────────────▶ app (wiring: App::build, run_until_stopped)
//!              │ user/client/keys/db commands       │
//!              ▼                                    ▼
//!   adapters   cli                 http  (axum handlers, extractors, pages; errors → HTTP)
//!                 ╲                 │
//!   protocol       ╲──────────▶  oauth   (grants, client auth, scopes, sessions, throttle;
//!                                   │     no HTTP, no SQL; time is a parameter)
//!   crypto/data    tokens (keys, JWKS, JWS)   store (sqlx; the only SQL)   password (argon2)
//!   leaves         model (plain types, parsing rules)   clock   digest   metrics   telemetry
//!   (config parses flags into the types of password and oauth::throttle: an adapter's part)
//! ```
//!
//! # One request's path: `POST /token` with the password grant
//!
//! 1. `http::serve` accepts the connection (limits, timeouts); the router sends the request
//!    to `http::token::token`, which extracts the client credentials (`http::extract`) and
//!    the form (`oauth::Params`).
//! 2. `oauth::OAuth::token` authenticates the client (`oauth::client_auth`, a batched read in
//!    `store`), checks the grant type, and runs `grants::password`.
//! 3. The password grant asks `oauth::throttle` whether to try at all, reads the user
//!    (`store`), verifies the password on a hashing thread (`password`), and settles the
//!    attempt with the throttle.
//! 4. It starts a session (a refresh-token family in `store`) and mints the tokens
//!    (`tokens`: claims, then a JWS signed with the ring's key).
//! 5. `http::error` / the handler turn the result into the RFC 6749 §5.1 JSON response, or
//!    the §5.2 error.
//!
//! Each module opens with what lives in it. `docs/decisions.md` records why things are the
//! way they are.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod digest;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod oauth;
pub mod password;
pub mod store;
pub mod telemetry;
pub mod tokens;
