//! One typed client for ferrid's endpoints, used by every test module: the token endpoint
//! and its grants, introspection, revocation, userinfo and the JWKS — against an in-process
//! server (`TestApp::api`) or a `ferrid serve` process (`Api::new(&server.base)`).

use std::time::Duration;

use serde_json::Value;

/// A relying party's view of one ferrid: its base URL and, for the client-authenticated
/// endpoints, the client's credentials (sent with HTTP Basic).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    client: Option<(String, String)>,
}

impl Api {
    /// Follows no redirects (tests look at them), and gives up after 15 s.
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .expect("http client");
        Self {
            http,
            base: base.to_owned(),
            client: None,
        }
    }

    /// The same client, talking to another server (a replica, or one restarted elsewhere).
    pub fn at(&self, base: &str) -> Self {
        Self {
            base: base.to_owned(),
            ..self.clone()
        }
    }

    /// This API as the client `id` with `secret`.
    pub fn as_client(&self, id: &str, secret: &str) -> Self {
        Self {
            client: Some((id.to_owned(), secret.to_owned())),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = &self.client {
            request = request.basic_auth(id, Some(secret));
        }
        request
    }

    /// `POST /token` with `form`; `Err` when the server is unreachable.
    pub async fn try_token(&self, form: &[(&str, &str)]) -> reqwest::Result<(u16, Value)> {
        let res = self.post("/token", form).send().await?;
        let status = res.status().as_u16();
        // RFC 6749 §5.1, §5.2: no token response, nor error, is ever cached.
        assert_eq!(res.headers()["cache-control"], "no-store", "{status}");
        // A body cut off (the server died mid-answer) is an error like a refused connection.
        let body = res.bytes().await?;
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body:?}"));
        Ok((status, json))
    }

    /// `POST /token` with `form`: status and JSON body.
    pub async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        self.try_token(form).await.expect("token request")
    }

    /// The password grant (RFC 6749 §4.3) for `username`, with `scope` if given.
    pub async fn login(&self, username: &str, password: &str, scope: Option<&str>) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.token(&form).await
    }

    /// The refresh grant (RFC 6749 §6), narrowed to `scope` if given; `Err` when the server
    /// is unreachable.
    pub async fn try_refresh(
        &self,
        token: &str,
        scope: Option<&str>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.try_token(&form).await
    }

    pub async fn refresh(&self, token: &str, scope: Option<&str>) -> (u16, Value) {
        self.try_refresh(token, scope)
            .await
            .expect("refresh request")
    }

    /// `POST /introspect` (RFC 7662): always 200 and `no-store`; the JSON body.
    pub async fn introspect(&self, token: &str) -> Value {
        let res = self
            .post("/introspect", &[("token", token)])
            .send()
            .await
            .expect("introspection request");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        res.json().await.expect("introspection json")
    }

    /// `POST /revoke` (RFC 7009).
    pub async fn revoke(&self, token: &str) -> reqwest::Response {
        self.post("/revoke", &[("token", token)])
            .send()
            .await
            .expect("revocation request")
    }

    /// `GET /userinfo` with a Bearer token.
    pub async fn userinfo(&self, token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/userinfo"))
            .bearer_auth(token)
            .send()
            .await
            .expect("userinfo request")
    }

    /// `GET /jwks.json`.
    pub async fn jwks(&self) -> Value {
        let res = self
            .http
            .get(self.url("/jwks.json"))
            .send()
            .await
            .expect("jwks request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("jwks json")
    }
}

/// The string member `name` of a JSON body (a token, say), or a panic that shows the body.
pub fn field(body: &Value, name: &str) -> String {
    body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .to_owned()
}

/// The claims of a JWT, read without checking anything (to look at what was issued).
pub fn insecure_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The `kid` of a JWT's header.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT header")
        .kid
        .expect("a kid")
}

/// The kids of a JWKS.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// The private key ferrid signs with, read from its keys dir (as an insider could).
pub fn signing_key_pem(app: &super::TestApp) -> Vec<u8> {
    let file = std::fs::read_dir(app.keys_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pem"))
        .unwrap();
    std::fs::read(file).unwrap()
}

/// The JOSE header of an access token (RFC 9068 §2.1) signed with `kid`.
pub fn at_header(kid: &str) -> jsonwebtoken::Header {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid.into());
    h
}
