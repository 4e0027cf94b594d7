//! A real relying party: Apache httpd with mod_auth_openidc (Debian's `apache2-bin` and
//! `libapache2-mod-auth-openidc`) protects a page, and headless Chromium signs in to it
//! through ferrid — the built binary, `ferrid serve`, set up with its own commands. In order: the sign-in (the authorization request sent by POST) lands on
//! the page with the user's claims; the RP's refresh_token grant gives it new tokens;
//! RP-initiated logout ends both sessions and returns to a registered post-logout URI; and
//! back-channel logout — ferrid ending the user's sessions on a password change — ends the
//! Apache session without the browser going anywhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::chrome::{
    Group, PATIENCE, cookies, free_port, sign_in, start_browser, text_of, wait_for_page,
};
use crate::support::{
    Api, PASSWORD, Server, TestDir, USER, ferrid_cli, ferrid_cli_async, provision, stderr, stdout,
};

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";
const RP: &str = "apache-rp";
const EMAIL: &str = "ada@example.com";

/// Apache httpd in the foreground on a loopback port, every file of it in a temp dir. Its
/// error log (mod_auth_openidc at debug level) and access log are printed when a test
/// fails while it runs.
struct Apache {
    port: u16,
    dir: TempDir,
    process: Option<Group>,
}

impl Apache {
    /// Writes `conf` (with `{DIR}` for the server root) and starts Apache; returns once it
    /// answers.
    async fn start(port: u16, conf: &str) -> Apache {
        for path in [APACHE.to_owned(), format!("{MODULES}/mod_auth_openidc.so")] {
            assert!(
                Path::new(&path).exists(),
                "{path} is missing: this test needs Debian's apache2-bin (or apache2) and \
                 libapache2-mod-auth-openidc: apt-get install apache2-bin \
                 libapache2-mod-auth-openidc (.ci/test does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Started as root, Apache serves as nobody (its `User`): the pages must be readable.
        std::fs::create_dir_all(root.join("htdocs/protected")).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::write(root.join("htdocs/protected/index.html"), PROTECTED_PAGE).unwrap();
        std::fs::write(root.join("htdocs/loggedout.html"), LOGGED_OUT_PAGE).unwrap();
        for d in [root, &root.join("htdocs"), &root.join("htdocs/protected")] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let conf_path = root.join("httpd.conf");
        std::fs::write(
            &conf_path,
            conf.replace("{DIR}", &root.display().to_string()),
        )
        .unwrap();
        let process = Group::spawn(
            Command::new(APACHE)
                .arg("-f")
                .arg(&conf_path)
                .arg("-DFOREGROUND")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(root.join("stdout.log")).unwrap())
                .stderr(std::fs::File::create(root.join("stderr.log")).unwrap()),
            "TERM",
            Duration::from_secs(10),
        )
        .expect("apache2 starts");
        let mut apache = Apache {
            port,
            dir,
            process: Some(process),
        };
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if http.get(apache.url("/loggedout.html")).send().await.is_ok() {
                return apache;
            }
            if let Some(Ok(Some(status))) = apache.process.as_mut().map(|p| p.child.try_wait()) {
                panic!("apache2 exited with {status}"); // the logs follow (Drop)
            }
            assert!(start.elapsed() < PATIENCE, "apache2 did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Its stderr, access log and error log.
    fn logs(&self) -> String {
        let read = |name| std::fs::read_to_string(self.file(name)).unwrap_or_default();
        format!(
            "--- apache stderr\n{}--- apache access log\n{}--- apache error log\n{}",
            read("stderr.log"),
            read("access.log"),
            read("error.log")
        )
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        // Stopped before the temp dir goes (the error log is still there to print).
        drop(self.process.take());
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The protected page: what mod_auth_openidc tells the application about the user
/// (server-side includes of the variables it sets).
const PROTECTED_PAGE: &str = r#"<!doctype html>
<title>Protected</title>
<p>REMOTE_USER <span id="remote-user"><!--#echo var="REMOTE_USER" --></span></p>
<p>sub <span id="sub"><!--#echo var="OIDC_CLAIM_sub" --></span></p>
<p>email <span id="email"><!--#echo var="OIDC_CLAIM_email" --></span></p>
<p>preferred_username <span id="preferred-username"><!--#echo var="OIDC_CLAIM_preferred_username" --></span></p>
<p>name <span id="name"><!--#echo var="OIDC_CLAIM_name" --></span></p>
"#;

/// Where the RP sends the browser after logout.
const LOGGED_OUT_PAGE: &str = "<!doctype html><title>Logged out of the app</title><p>Bye.\n";

/// The Apache configuration: only the modules it needs, every path in `{DIR}`, and
/// mod_auth_openidc protecting `/protected` with ferrid as its provider.
fn apache_conf(port: u16, issuer: &str, secret: &str) -> String {
    format!(
        r#"ServerRoot "{{DIR}}"
ServerName 127.0.0.1:{port}
Listen 127.0.0.1:{port}
PidFile "{{DIR}}/httpd.pid"
DefaultRuntimeDir "{{DIR}}/run"
ErrorLog "{{DIR}}/error.log"
LogLevel warn auth_openidc:debug
CustomLog "{{DIR}}/access.log" "%r -> %>s %{{Location}}o"

LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authn_core_module {MODULES}/mod_authn_core.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule authz_user_module {MODULES}/mod_authz_user.so
LoadModule dir_module {MODULES}/mod_dir.so
LoadModule include_module {MODULES}/mod_include.so
LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so

# Ignored unless started as root; then the workers run as nobody.
User #65534
Group #65534
# One small worker process: enough for one browser, and the machine runs other tests.
ServerLimit 1
StartServers 1
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 17

DocumentRoot "{{DIR}}/htdocs"
<Directory "{{DIR}}/htdocs">
    Require all granted
    DirectoryIndex index.html
    # No mod_mime: every file is a page.
    ForceType text/html
</Directory>
<Directory "{{DIR}}/htdocs/protected">
    Options +Includes
    SetOutputFilter INCLUDES
</Directory>

OIDCProviderMetadataURL {issuer}/.well-known/openid-configuration
OIDCClientID {RP}
OIDCClientSecret {secret}
# Inside the protected location, as mod_auth_openidc requires; it answers the callback, the
# info hook, and RP-initiated and back-channel logout itself.
OIDCRedirectURI http://127.0.0.1:{port}/protected/redirect_uri
OIDCCryptoPassphrase apache-test-passphrase-0123456789
OIDCScope "openid profile email offline_access"
# The authorization request as a form the browser POSTs (OIDC Core §3.1.2.1).
OIDCProviderAuthRequestMethod POST
OIDCPKCEMethod S256
OIDCRemoteUserClaim email
OIDCSessionType server-cache
OIDCDefaultLoggedOutURL http://127.0.0.1:{port}/loggedout.html
OIDCInfoHook iat access_token access_token_expires id_token userinfo refresh_token session
# SameSite=Lax on the state and session cookies (Strict on the session cookie's updates):
# the browser comes back from ferrid with a top-level GET, which Lax cookies accompany. Off
# would mean SameSite=None over https (and nothing over http).
OIDCCookieSameSite On

<Location /protected>
    AuthType openid-connect
    Require valid-user
</Location>
"#
    )
}

/// mod_auth_openidc's info hook, called with `cookies`: the status and the JSON (Null when
/// there is none). `refresh` asks it to run a refresh_token grant first.
async fn session_info(apache: &Apache, cookies: &str, refresh: bool) -> (u16, Value) {
    let mut url = apache.url("/protected/redirect_uri?info=json");
    if refresh {
        // The grant runs when the last one is older than this many seconds.
        url.push_str("&access_token_refresh_interval=0");
    }
    let res = reqwest::Client::new()
        .get(url)
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_mod_auth_openidc_signs_in_refreshes_and_logs_out() {
    // 1. ferrid, with the RP's client and a user registered through the command line. The
    //    client's URIs are on Apache's port, picked first: the callback; the page to return
    //    to after logout; and the back-channel logout endpoint, which for mod_auth_openidc
    //    is its redirect URI with `logout=backchannel`.
    let apache_port = free_port();
    let apache_url = |path: &str| format!("http://127.0.0.1:{apache_port}{path}");
    let redirect_uri = apache_url("/protected/redirect_uri");
    let logged_out = apache_url("/loggedout.html");
    let backchannel = apache_url("/protected/redirect_uri?logout=backchannel");
    let dir = TestDir::new();
    let client_args = [
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid",
        "--scope",
        "profile",
        "--scope",
        "email",
        "--scope",
        "offline_access",
        "--redirect-uri",
        &redirect_uri,
        "--post-logout-redirect-uri",
        &logged_out,
        "--backchannel-logout-uri",
        &backchannel,
    ];
    let secret = provision(
        dir.path(),
        RP,
        &client_args,
        &[(
            USER,
            PASSWORD,
            &["--email", EMAIL, "--name", "Ada Lovelace"],
        )],
    );
    // The binary as operators run it: `ferrid serve`.
    let app = Server::start(dir.path(), &[], &[]);
    let listed = stdout(&ferrid_cli(dir.path(), &["user", "list"], ""));
    let sub = listed
        .split_whitespace()
        .nth(1)
        .expect("the user's id in `user list`")
        .to_owned();

    // 2. Apache, with ferrid as its provider (from discovery) and the client's secret.
    let apache = Apache::start(apache_port, &apache_conf(apache_port, &app.base, &secret)).await;
    let (_profile, _driver, browser) = start_browser().await;

    // 3. The protected page sends the browser to ferrid's login page; signed in, it comes
    //    back to the page, which shows the user's claims.
    let protected = apache.url("/protected/");
    browser.goto(&protected).await.unwrap();
    wait_for_page(&browser, "Sign in", &app.base).await;
    sign_in(&browser, PASSWORD).await;
    wait_for_page(&browser, "Protected", &protected).await;
    assert_eq!(text_of(&browser, "#remote-user").await, EMAIL);
    assert_eq!(text_of(&browser, "#sub").await, sub);
    assert_eq!(text_of(&browser, "#email").await, EMAIL);
    assert_eq!(text_of(&browser, "#preferred-username").await, USER);
    assert_eq!(text_of(&browser, "#name").await, "Ada Lovelace");

    // 4. The RP refreshes: a refresh_token grant at ferrid's /token gives it a new access
    //    token and rotates the refresh token (the old one is no longer active at ferrid).
    let signed_in = cookies(&browser).await;
    let (status, before) = session_info(&apache, &signed_in, false).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["id_token"]["sub"], sub.as_str());
    assert_eq!(before["userinfo"]["email"], EMAIL);
    let (status, after) = session_info(&apache, &signed_in, true).await;
    assert_eq!(status, 200, "{after}");
    let token = |info: &Value, name: &str| {
        info[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .to_owned()
    };
    assert_ne!(
        token(&before, "access_token"),
        token(&after, "access_token"),
        "a new access token"
    );
    let rp = Api::new(&app.base).as_client(RP, &secret);
    let introspected = rp.introspect(&token(&after, "access_token")).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["sub"], sub.as_str());
    let old_refresh = rp.introspect(&token(&before, "refresh_token")).await;
    assert_eq!(old_refresh["active"], false, "rotated away: {old_refresh}");
    let new_refresh = rp.introspect(&token(&after, "refresh_token")).await;
    assert_eq!(new_refresh["active"], true, "{new_refresh}");

    // 5. RP-initiated logout: mod_auth_openidc ends its session, then sends the browser to
    //    ferrid's end_session_endpoint with id_token_hint and post_logout_redirect_uri;
    //    ferrid ends its session (the hint names its user: no confirmation page) and sends
    //    the browser on to the registered post-logout page.
    let logout = url::Url::parse_with_params(
        &apache.url("/protected/redirect_uri"),
        &[("logout", logged_out.as_str())],
    )
    .unwrap();
    browser.goto(logout.as_str()).await.unwrap();
    wait_for_page(&browser, "Logged out of the app", &logged_out).await;
    // Gone on the server, not only forgotten by the browser: the old cookie finds nothing.
    let (status, _) = session_info(&apache, &signed_in, false).await;
    assert_eq!(status, 401, "the Apache session is gone");
    // And ferrid's session too: the login form again, not single sign-on.
    browser.goto(&protected).await.unwrap();
    wait_for_page(&browser, "Sign in", &app.base).await;

    // 6. Back-channel logout: signed in again, the user's password changes at ferrid, which
    //    ends the user's sessions and POSTs a logout token to the RP's back-channel URI;
    //    the RP ends its session. The browser is not involved.
    sign_in(&browser, PASSWORD).await;
    wait_for_page(&browser, "Protected", &protected).await;
    let signed_in = cookies(&browser).await;
    let (status, info) = session_info(&apache, &signed_in, false).await;
    assert_eq!(status, 200, "{info}");
    // mod_auth_openidc indexes its sessions by the ID token's sid (by sub without one), and
    // looks up the sid of a logout token there.
    assert!(info["id_token"]["sid"].is_string(), "no sid: {info}");

    let out = ferrid_cli_async(
        dir.path(),
        &["user", "passwd", USER],
        "a new password, typed\n",
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let start = Instant::now();
    while session_info(&apache, &signed_in, false).await.0 != 401 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the Apache session outlived the back-channel logout (the browser's cookie still \
             finds it); ferrid's log:\n{}",
            std::fs::read_to_string(&app.log_file).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The browser, cookies unchanged, is sent to sign in again.
    browser.goto(&protected).await.unwrap();
    wait_for_page(&browser, "Sign in", &app.base).await;

    browser.close().await.unwrap();
    assert!(app.stop(), "ferrid serve stops cleanly on SIGTERM");
}
