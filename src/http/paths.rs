//! Route paths, shared by the router and the discovery document: change one, both follow.

/// The URL of the endpoint at `path` for `issuer`: endpoints hang off the issuer, a path in
/// the issuer kept (a proxy maps it).
pub fn url(issuer: &str, path: &str) -> String {
    format!("{}{path}", issuer.trim_end_matches('/'))
}

pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const OAUTH_AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/jwks.json";
pub const TOKEN: &str = "/token";
pub const USERINFO: &str = "/userinfo";
pub const INTROSPECT: &str = "/introspect";
pub const REVOKE: &str = "/revoke";
pub const AUTHORIZE: &str = "/authorize";
/// The login form posts here (forms are relative: `action="login"`).
pub const LOGIN: &str = "/login";
/// The consent form posts here (`action="consent"`).
pub const CONSENT: &str = "/consent";
pub const LOGOUT: &str = "/logout";
pub const STYLESHEET: &str = "/assets/ferrid.css";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";

/// Every route of the router: `/metrics` labels requests with these `'static` strings.
/// (Every route is a fixed path, so a request's path is its route when it is one of these.)
pub const ALL: [&str; 15] = [
    OPENID_CONFIGURATION,
    OAUTH_AUTHORIZATION_SERVER,
    JWKS,
    TOKEN,
    USERINFO,
    INTROSPECT,
    REVOKE,
    AUTHORIZE,
    LOGIN,
    CONSENT,
    LOGOUT,
    STYLESHEET,
    HEALTHZ,
    READYZ,
    METRICS,
];

/// The route `path` is, if it is one.
pub fn pattern(path: &str) -> Option<&'static str> {
    ALL.iter().find(|p| **p == path).copied()
}
