//! The HTTP client for discovery and the JWKS: GET only, HTTP/1.1, https over aws-lc with
//! the system's trusted roots (plain http for a loopback issuer in development), no
//! redirects, a timeout on the whole exchange and a cap on the body.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{AGE, CACHE_CONTROL, ETAG, IF_NONE_MATCH, USER_AGENT};
use axum::http::{HeaderValue, Request};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::error::SetupError;

/// Bigger discovery documents or key sets are refused (ferrid's are a few KiB).
const MAX_BODY_BYTES: usize = 1024 * 1024;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub(crate) struct Http {
    client: Client<Connector, Empty<Bytes>>,
    timeout: Duration,
}

/// An answer: its status, the caching headers, and the body.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub status: u16,
    pub etag: Option<String>,
    pub cache_control: Option<String>,
    pub age: Option<String>,
    pub body: Bytes,
}

impl Http {
    /// `native_roots`: read the system's trusted roots (file I/O: call it off the async
    /// workers); without them only plain http works.
    pub fn new(native_roots: bool, timeout: Duration) -> Result<Self, SetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let builder = if native_roots {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider)
                .map_err(|e| {
                    SetupError::Tls(format!(
                        "no trusted roots in the system ({e}); install the system's CA \
                         certificates (Debian: ca-certificates)"
                    ))
                })?
        } else {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| SetupError::Tls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Self { client, timeout })
    }

    /// `GET uri`, conditional on `etag` when given (RFC 9110 §13.1.2). The error is a
    /// reason for the logs: it never holds a token (none is ever sent).
    pub async fn get(&self, uri: &str, etag: Option<&str>) -> Result<Fetched, String> {
        let mut request = Request::get(uri).header(
            USER_AGENT,
            HeaderValue::from_static(concat!("ferrid-verify/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| format!("not a valid request URL: {e}"))?;
        let exchange = async {
            let res = self.client.request(request).await.map_err(|e| {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                format!("{e}{}", cause.map(|c| format!(": {c}")).unwrap_or_default())
            })?;
            let header = |name| {
                res.headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (etag, cache_control, age) = (header(ETAG), header(CACHE_CONTROL), header(AGE));
            let status = res.status().as_u16();
            let body = Limited::new(res.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Fetched {
                status,
                etag,
                cache_control,
                age,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))?
    }
}

/// How long an answer stays fresh, in seconds (RFC 9111 §4.2.1): its `max-age` less its
/// `Age`; zero for `no-store`, `no-cache` (RFC 9111 §5.2.2.4, §5.2.2.5: use it once, then
/// ask again), no `max-age`, or one that does not parse (RFC 9111 §1.2.2: invalid is stale).
/// `s-maxage` is for shared caches, which this is not (RFC 9111 §5.2.2.10).
pub(crate) fn freshness(cache_control: Option<&str>, age: Option<&str>) -> i64 {
    let mut max_age = None;
    for directive in cache_control.unwrap_or_default().split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return 0;
        }
        // RFC 9111 §4.2.1: of several, the first counts.
        if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
            max_age = Some(value.and_then(delta_seconds).unwrap_or(0));
        }
    }
    // RFC 9111 §4.2.3: a copy that spent `Age` seconds in caches on its way has less left.
    let age = age.and_then(delta_seconds).unwrap_or(0);
    max_age.unwrap_or(0).saturating_sub(age).max(0)
}

/// RFC 9111 §1.2.2: digits only; too big for the type is "as large as possible".
fn delta_seconds(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<i64>().unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_less_age_is_the_freshness() {
        assert_eq!(freshness(Some("public, max-age=300"), None), 300);
        assert_eq!(freshness(Some("Max-Age=\"60\", public"), None), 60);
        assert_eq!(freshness(Some("public, max-age=300"), Some("100")), 200);
        assert_eq!(freshness(Some("max-age=30"), Some("100")), 0);
        assert_eq!(freshness(Some("max-age=10, max-age=99"), None), 10);
        assert_eq!(
            freshness(Some("max-age=99999999999999999999"), None),
            i64::MAX
        );
    }

    #[test]
    fn no_store_no_cache_or_no_max_age_is_stale_at_once() {
        for cc in [
            Some("no-store"),
            Some("public, max-age=300, no-cache"),
            Some("public"),
            Some("max-age=-1"),
            Some("max-age=1e3"),
            Some("s-maxage=300"),
            None,
        ] {
            assert_eq!(freshness(cc, None), 0, "{cc:?}");
        }
    }
}
