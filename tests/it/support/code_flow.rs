//! The authorization-code flow from a relying party's side: the code-flow clients, a
//! browser without JavaScript (cookies kept, no redirects followed), the login form, the
//! code exchange.

use std::collections::HashMap;

use serde_json::Value;

use super::{PASSWORD, TestApp, USER};

pub const RP: &str = "webapp";
pub const RP_SECRET: &str = "webapp-secret-0123456789-0123456789-0123456789";
pub const CALLBACK: &str = "http://127.0.0.1:9/callback";
pub const SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";

/// A client registered for the code flow (and refresh), plus a public one.
pub async fn spawn() -> TestApp {
    let app = TestApp::spawn().await;
    let mut client = ferrid::model::Client {
        id: RP.into(),
        secret_hash: Some(ferrid::oauth::client_auth::hash_client_secret(RP_SECRET)),
        grant_types: vec![
            ferrid::model::GrantType::AuthorizationCode,
            ferrid::model::GrantType::RefreshToken,
        ],
        scopes: ferrid::model::ScopeSet::parse("openid profile email items:read").unwrap(),
        redirect_uris: vec![CALLBACK.into()],
        post_logout_redirect_uris: vec![SIGNED_OUT.into()],
        ..Default::default()
    };
    app.store.insert_client(&client).await.unwrap();
    client.id = "spa".into();
    client.secret_hash = None;
    app.store.insert_client(&client).await.unwrap();
    app
}

/// A browser without JavaScript: follows nothing by itself, keeps cookies.
pub struct Browser {
    http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            cookies: HashMap::new(),
        }
    }

    fn remember(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&res);
        res
    }

    pub async fn post(&mut self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        let res = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.remember(&res);
        res
    }

    /// Fills the login page's form and submits it; returns the response.
    pub async fn sign_in(
        &mut self,
        base: &str,
        page: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let mut form = hidden_fields(page);
        form.push(("username".into(), username.into()));
        form.push(("password".into(), password.into()));
        self.post(&format!("{base}/login"), &form).await
    }
}

/// The hidden inputs of a login page.
pub fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\"")
        .skip(1)
        .map(|tag| {
            let attr = |name: &str| {
                let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                unescape(&tag[start..start + tag[start..].find('"').unwrap()])
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
}

/// The query parameters of a redirect.
pub fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

/// An authorization URL for `client` with PKCE S256; returns (url, verifier).
pub fn authorize_url(app: &TestApp, client: &str, extra: &[(&str, &str)]) -> (String, String) {
    let verifier = "a-verifier-of-at-least-43-characters-0123456789abcdef".to_owned();
    let challenge = {
        use base64::Engine;
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
    };
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", CALLBACK),
        ("scope", "openid profile"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    let url = url::Url::parse_with_params(&app.url("/authorize"), &params).unwrap();
    (url.to_string(), verifier)
}

/// Logs in through the page and returns the code.
pub async fn code_for(app: &TestApp, browser: &mut Browser, url: &str) -> String {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let res = browser.sign_in(&app.base, &page, USER, PASSWORD).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let q = query_of(&location(&res));
    assert_eq!(q["state"], "st4te");
    q["code"].clone()
}

pub async fn exchange(
    app: &TestApp,
    client: (&str, Option<&str>),
    code: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let res = match client.1 {
        Some(secret) => app.token(&form, Some((client.0, secret))).await,
        None => {
            form.push(("client_id", client.0));
            app.token(&form, None).await
        }
    };
    (res.status().as_u16(), res.json().await.unwrap())
}
