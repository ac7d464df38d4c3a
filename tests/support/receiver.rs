//! A webhook receiver on loopback: records every request it gets (headers and body) and
//! answers as told — 200, or a failure for the first few requests, or 410 Gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Lower-case header names.
    pub headers: HashMap<String, String>,
    /// The body, as sent.
    pub body: String,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Shared {
    got: Vec<Received>,
    fail_first: usize,
    answer: Option<u16>,
}

/// The receiver; it stops with the test's runtime.
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Starts one that answers 200.
    pub async fn start() -> Receiver {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let mut s = state.lock().unwrap();
                    s.got.push(Received {
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body,
                    });
                    if s.fail_first > 0 {
                        s.fail_first -= 1;
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "busy, try later".to_string(),
                        );
                    }
                    let code = s.answer.unwrap_or(200);
                    (StatusCode::from_u16(code).unwrap(), "ok".to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
        Receiver { url, shared }
    }

    /// Answers 503 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.shared.lock().unwrap().fail_first = n;
    }

    /// Answers `status` from now on.
    pub fn answer(&self, status: u16) {
        self.shared.lock().unwrap().answer = Some(status);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().got.clone()
    }

    /// Waits (at most `seconds`) until `done` holds for what was received; returns it.
    pub async fn until(&self, seconds: u64, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still waiting after {seconds} s; received {} requests: {:?}",
                got.len(),
                got.iter()
                    .map(|r| r.body.chars().take(120).collect::<String>())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
