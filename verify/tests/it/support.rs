//! A real ferrid in-process on a loopback port 0 (SQLite and keys in a temp dir, as
//! ferrid's own tests start it), clients and users added through its store, tokens fetched
//! over HTTP; and the example's router, served on another loopback port.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, Method, Request};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use bytes::Bytes;
use ferrid::app::App;
use ferrid::clock::Clock;
use ferrid::config::ServeConfig;
use ferrid::model::{Client, GrantType, ScopeSet, Secret};
use ferrid::oauth::client_auth::hash_client_secret;
use ferrid::password::{HashParams, Passwords};
use ferrid::store::{NewUser, Store};
use ferrid_verify::Verifier;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The audience the resource server under test expects.
pub const AUDIENCE: &str = "items-api";
/// A confidential `client_credentials` client whose tokens are for [`AUDIENCE`], allowed
/// `items:read` and `items:write`.
pub const SERVICE: &str = "reports";
/// A client for the password grant (ID tokens; `aud` is its id).
pub const WEB: &str = "web";
/// Every client's secret.
pub const SECRET: &str = "a-client-secret-0123456789-0123456789-0123456789";
pub const USER: &str = "ada";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Ferrid {
    /// The issuer, which is also the base URL.
    pub issuer: String,
    pub clock: Clock,
    pub dir: TempDir,
    store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Ferrid {
    /// A ferrid with the [`SERVICE`] client.
    pub async fn start() -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            ferrid::telemetry::init(false);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = format!("sqlite://{}", dir.path().join("ferrid.db").display());
        let mut config = ServeConfig::new(database_url, dir.path().join("keys"));
        config.bind = "127.0.0.1:0".parse().expect("addr");
        config.keys_reload_interval = Duration::from_millis(200);
        let clock = Clock::system();
        let app = App::build_with_clock(config, clock.clone())
            .await
            .expect("ferrid builds");
        let issuer = app.issuer().to_owned();
        let store = app.store().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let ran = app
                .run_until_stopped(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = ran {
                panic!("ferrid stopped with an error: {e:#}");
            }
        });
        let ferrid = Self {
            issuer,
            clock,
            dir,
            store,
            stop: Some(tx),
            task: Some(task),
        };
        ferrid
            .add_client(
                SERVICE,
                &["client_credentials"],
                "items:read items:write",
                &[AUDIENCE],
            )
            .await;
        ferrid
    }

    /// Stops the server gracefully; the port then refuses connections.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("ferrid's task");
        }
        self.store.close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Registers a confidential client through ferrid's store, as `ferrid client add` does.
    pub async fn add_client(&self, id: &str, grants: &[&str], scopes: &str, audiences: &[&str]) {
        let client = Client {
            id: id.into(),
            secret_hash: Some(hash_client_secret(SECRET)),
            grant_types: grants
                .iter()
                .map(|g| g.parse::<GrantType>().expect("grant"))
                .collect(),
            scopes: ScopeSet::parse(scopes).expect("scopes"),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            created_at: self.clock.now(),
            ..Default::default()
        };
        self.store
            .insert_client(&client)
            .await
            .expect("client inserted");
    }

    /// Adds a user with a password (argon2id at ferrid's parameters, off the runtime).
    pub async fn add_user(&self, username: &str, password: &str, scopes: &str) {
        let password = Secret::new(password);
        let hash = tokio::task::spawn_blocking(move || {
            Passwords::new(HashParams::default(), 1, 0)
                .expect("hasher")
                .hash_blocking(&password)
                .expect("hash")
        })
        .await
        .expect("hash task");
        let user = NewUser {
            username: username.into(),
            password_hash: hash,
            name: None,
            email: None,
            email_verified: false,
            scopes: ScopeSet::parse(scopes).expect("scopes"),
            disabled: false,
        };
        self.store
            .insert_user(&user, self.clock.now())
            .await
            .expect("user inserted");
    }

    /// `POST /token` as `client`; the JSON answer, which must be a 200.
    pub async fn token(&self, client: &str, form: &[(&str, &str)]) -> Value {
        let basic = STANDARD.encode(format!("{client}:{SECRET}"));
        let res = http()
            .send(
                Method::POST,
                &self.url("/token"),
                &[
                    ("authorization", &format!("Basic {basic}")),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form_encode(form),
            )
            .await;
        assert_eq!(res.status, 200, "token request failed: {}", res.body);
        res.json()
    }

    /// A `client_credentials` access token of [`SERVICE`] with `scope`.
    pub async fn service_token(&self, scope: &str) -> String {
        let body = self
            .token(
                SERVICE,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// How many `GET /jwks.json` ferrid answered, by its own metrics.
    pub async fn jwks_requests(&self) -> u64 {
        let res = http().get(&self.url("/metrics"), &[]).await;
        assert_eq!(res.status, 200);
        res.body
            .lines()
            .filter(|l| l.starts_with(r#"ferrid_http_requests_total{route="/jwks.json""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// ferrid's answers to `GET /jwks.json` with `status`.
    pub async fn jwks_answers(&self, status: u16) -> u64 {
        let res = http().get(&self.url("/metrics"), &[]).await;
        let prefix = format!(
            r#"ferrid_http_requests_total{{route="/jwks.json",method="GET",status="{status}"}}"#
        );
        res.body
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

/// The resource server's time: frozen, moved only by the test (so nothing depends on how
/// long a test takes). Starts at ferrid's now.
#[derive(Clone)]
pub struct Frozen(Arc<AtomicI64>);

impl Frozen {
    pub fn at(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

/// A verifier of this ferrid's tokens for `audience`, on its own frozen clock.
pub async fn verifier(ferrid: &Ferrid, audience: &str) -> (Verifier, Frozen) {
    let frozen = Frozen::at(ferrid.clock.now());
    let clock = frozen.clone();
    let verifier = Verifier::builder(&ferrid.issuer, audience)
        .clock(Arc::new(move || clock.now()))
        .discover()
        .await
        .expect("discovery");
    (verifier, frozen)
}

/// The example's router with `verifier`, served on a loopback port: its base URL.
pub async fn serve_example(verifier: Verifier) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, crate::example::app(verifier))
            .await
            .expect("serve");
    });
    format!("http://{addr}")
}

/// An HTTP/1.1 client (plain http: everything here is on loopback).
pub struct Http(hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>);

pub fn http() -> Http {
    Http(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(HttpConnector::new()),
    )
}

pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII"))
    }
}

impl Http {
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Res {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let res = tokio::time::timeout(Duration::from_secs(20), self.0.request(req))
            .await
            .expect("an answer within 20 s")
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Res {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).expect("UTF-8"),
        }
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Res {
        self.send(Method::GET, url, headers, String::new()).await
    }

    /// `GET url` with `Authorization: Bearer token`.
    pub async fn get_with(&self, url: &str, token: &str) -> Res {
        self.get(url, &[("authorization", &format!("Bearer {token}"))])
            .await
    }
}

fn form_encode(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The protected header of a compact JWS.
pub fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("a header");
    serde_json::from_slice(&B64.decode(header).expect("base64url")).expect("JSON")
}

pub fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().expect("a kid").to_owned()
}

/// A token that looks like ferrid's (right header, issuer, audience, times) but is signed by
/// `key`, which ferrid never published, and names `kid`.
pub fn forge(key: &aws_lc_rs::rsa::KeyPair, kid: &str, ferrid: &Ferrid) -> String {
    let now = ferrid.clock.now();
    let claims = serde_json::json!({
        "iss": ferrid.issuer, "sub": "mallory", "aud": AUDIENCE, "exp": now + 600,
        "iat": now, "jti": kid, "client_id": SERVICE, "scope": "items:read",
    });
    // ferrid's own JWS writer, with a key ferrid never published.
    ferrid::tokens::jws::sign(key, kid, Some("at+jwt"), &claims).expect("signed")
}
