//! ferrid: a standalone OAuth 2.0 / OpenID Connect identity provider.
//!
//! The modules, from the leaves up (each may import only the ones above it in this list,
//! except `app`, which wires everything together):

/// Wiring: `App::build` connects the store, loads keys, binds the listener, builds the router.
pub mod app;
/// The `ferrid` command line: `serve`, `user`, `client`, `keys`.
pub mod cli;
/// Time as a parameter: the [`clock::Clock`] that protocol and store code are handed.
pub mod clock;
/// Command-line and environment configuration, validated once into typed values.
pub mod config;
/// The axum adapters: extractors, endpoint handlers, error responses.
pub mod http;
/// Counters behind `/metrics`.
pub mod metrics;
/// Plain data shared by every layer: users, clients, scopes, grant types, secrets.
pub mod model;
/// The protocol: client authentication, scope policy, grants. Free of HTTP.
pub mod oauth;
/// argon2id hashing and verification (bcrypt imports upgraded), always off the async workers.
pub mod password;
/// Persistence (sqlx): users and clients. SQL lives only here.
pub mod store;
/// Logging setup.
pub mod telemetry;
/// Signing keys on disk, the JWKS, and minting/verifying JWTs. Free of HTTP and SQL.
pub mod tokens;
