//! A relying party's endpoint on a loopback port that records what it receives: the
//! callback of a form-post response, or a back-channel logout URI. It can be told to fail a
//! number of requests first, or to hold every request until released.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub content_type: String,
    pub body: String,
}

impl Received {
    /// The body's form fields.
    pub fn form(&self) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<Mutex<usize>>,
    redirect: Arc<Mutex<Option<String>>>,
    open: watch::Sender<bool>,
}

impl Receiver {
    /// Answers every request 200 with a small page titled "Relying party".
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (open, _) = watch::channel(true);
        let receiver = Receiver {
            base,
            received: Arc::default(),
            fail_first: Arc::default(),
            redirect: Arc::default(),
            open,
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move { r.serve(stream).await });
            }
        });
        receiver
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next `n` requests are recorded and answered 500.
    pub fn fail_next(&self, n: usize) {
        *self.fail_first.lock().unwrap() = n;
    }

    /// Requests are recorded and answered 302 to `to` (a relying party's callback sending the
    /// browser on to its app).
    pub fn redirect_to(&self, to: &str) {
        *self.redirect.lock().unwrap() = Some(to.to_owned());
    }

    /// Requests are recorded, and answered only once `release` is called.
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    pub fn release(&self) {
        self.open.send_replace(true);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn serve(&self, mut stream: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        // Headers, then as much body as Content-Length says.
        let (head, body_start) = loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break (String::from_utf8_lossy(&buf[..end]).into_owned(), end + 4);
            }
        };
        let header = |name: &str| {
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < body_start + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let mut request_line = head.lines().next().unwrap_or_default().split(' ');
        let received = Received {
            method: request_line.next().unwrap_or_default().to_owned(),
            target: request_line.next().unwrap_or_default().to_owned(),
            content_type: header("content-type").unwrap_or_default(),
            body: String::from_utf8_lossy(&buf[body_start..body_start + length]).into_owned(),
        };
        self.received.lock().unwrap().push(received);
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        let fail = {
            let mut left = self.fail_first.lock().unwrap();
            let fail = *left > 0;
            *left = left.saturating_sub(1);
            fail
        };
        let redirect = self.redirect.lock().unwrap().clone();
        let (status, location, body) = match (fail, redirect) {
            (true, _) => (
                "500 Internal Server Error",
                String::new(),
                "failing on purpose",
            ),
            (false, Some(to)) => ("302 Found", format!("location: {to}\r\n"), ""),
            (false, None) => (
                "200 OK",
                String::new(),
                "<!doctype html><title>Relying party</title><p>Received.",
            ),
        };
        let res = format!(
            "HTTP/1.1 {status}\r\n{location}content-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(res.as_bytes()).await;
    }
}
