//! A real browser for the tests: Debian's Chromium, headless, driven through chromedriver
//! with the fantoccini WebDriver client; and process groups that are killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::json;
use tempfile::TempDir;

use super::USER;

/// How long a page may take to get where it is going (redirects, forms that submit
/// themselves, a relying party's calls to ferrid).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Kills, when dropped, the process group of a child started as its leader: the child and
/// whatever it started (chromedriver's Chromium, Apache's workers), also when a test fails.
pub struct Group {
    pub child: Child,
    /// The leader gets this signal first, to clean up (Apache removes its shared memory and
    /// semaphores on SIGTERM); then, after at most `grace`, the group gets SIGKILL.
    first: &'static str,
    grace: Duration,
}

impl Group {
    pub fn spawn(cmd: &mut Command, first: &'static str, grace: Duration) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).spawn()?;
        Ok(Group {
            child,
            first,
            grace,
        })
    }

    fn signal(&self, signal: &str, target: String) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), "--".into(), target])
            .stderr(Stdio::null())
            .status();
    }

    /// Whether the leader has exited — without reaping it, so that its id (the group's)
    /// cannot be reused before the group is killed.
    fn leader_exited(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
        // "PID (COMM) STATE …"; Z: a zombie, waiting to be reaped.
        stat.map_or(true, |s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pid = self.child.id();
        self.signal(self.first, pid.to_string());
        let start = Instant::now();
        while start.elapsed() < self.grace && !self.leader_exited() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal("KILL", format!("-{pid}"));
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a loopback port (in a process group of its own, so that its Chromium
/// goes with it) and a headless Chromium session with a fresh profile. Dropped in reverse
/// order, the profile goes after the browser.
pub async fn start_browser() -> (TempDir, Group, Browser) {
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("this test needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver (.ci/test does)");
    let port = free_port();
    let driver = Group::spawn(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "KILL",
        Duration::ZERO,
    )
    .expect("chromedriver starts");
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=480,800",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let start = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(browser) => return (profile, driver, browser),
            Err(_) if start.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start the browser: {e}"),
        }
    }
}

/// Waits until the browser's page has `title` and its URL starts with `url`; returns the
/// URL.
pub async fn wait_for_page(browser: &Browser, title: &str, url: &str) -> String {
    let start = Instant::now();
    loop {
        let current = browser.current_url().await.unwrap().to_string();
        let current_title = browser.title().await.unwrap_or_default();
        if current_title == title && current.starts_with(url) {
            return current;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "expected the page {title:?} at {url}…, still on {current_title:?} at {current}:\n{}",
            browser.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills in and submits ferrid's login form, which the browser is on.
pub async fn sign_in(browser: &Browser, password: &str) {
    for (field, value) in [("#username", USER), ("#password", password)] {
        let input = browser.find(Locator::Css(field)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

pub async fn text_of(browser: &Browser, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The browser's cookies for the page it is on, as a Cookie header.
pub async fn cookies(browser: &Browser) -> String {
    browser
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}
