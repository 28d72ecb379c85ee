//! Helpers for end-to-end tests: real `hubspoke` child processes, the broker, a REST client.
// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

pub mod flows;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `hubspoke up` process on a free loopback port, killed when dropped.
pub struct Hubspoke {
    child: Child,
    pub base: String,
}

impl Hubspoke {
    pub fn up(args: &[&str]) -> Hubspoke {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubspoke"))
            .arg("up")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hubspoke up");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let base = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("http://"))
            .unwrap_or_else(|| panic!("unexpected first line from hubspoke up: {line:?}"))
            .to_string();
        Hubspoke { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// In `hubspoke up` one listener serves both APIs.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            nb: self.base.clone(),
            sim: self.base.clone(),
        }
    }
}

/// Where a deployment serves the northbound API and the simulator's /sim/ API.
pub struct Endpoints {
    pub nb: String,
    pub sim: String,
}

impl Endpoints {
    pub fn nb(&self, path: &str) -> String {
        format!("{}{path}", self.nb)
    }

    pub fn sim(&self, path: &str) -> String {
        format!("{}{path}", self.sim)
    }
}

impl Drop for Hubspoke {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("GET");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.expect("JSON body")
}
