//! Helpers for end-to-end tests: real `hubspoke` child processes, the broker, a REST client.

mod api;
pub mod crash;
pub mod diversity;
pub mod exact;
pub mod flows;
pub mod ovs;
pub mod paths;
pub mod protected;
pub mod reroute;
pub mod swap_endpoints;

pub use api::Api;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `hubspoke` child process, killed when dropped.
pub struct Process {
    child: Child,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    /// Its first `hubspoke …` line on stdout (`… listening on http://ADDR` for servers).
    pub first_line: String,
}

impl Process {
    /// Starts the process and waits for its first line on stdout.
    pub fn start(args: &[&str]) -> Process {
        let mut process = Process::spawn(args);
        process.wait_first_line();
        process
    }

    /// Starts the process without waiting (e.g. for timely cluster peers that wait for each other).
    pub fn spawn(args: &[&str]) -> Process {
        Process::spawn_with_stderr(args, Stdio::inherit())
    }

    /// [`spawn`](Self::spawn), with its stderr going to `stderr` (a file, to read what it
    /// said). A `topology` gets a free port for its `/health` unless the args name one, so
    /// tests in parallel do not share its default port.
    pub fn spawn_with_stderr(args: &[&str], stderr: impl Into<Stdio>) -> Process {
        let mut args = args.to_vec();
        if args.first() == Some(&"topology") && !args.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_hubspoke"))
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("HUBSPOKE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start hubspoke");
        let stdout = child.stdout.take().map(BufReader::new);
        Process {
            child,
            stdout,
            first_line: String::new(),
        }
    }

    /// Waits for the process's own first line (`hubspoke …`); timely prints lines of its own
    /// while a cluster forms.
    pub fn wait_first_line(&mut self) {
        if let Some(mut stdout) = self.stdout.take() {
            let mut line = String::new();
            while !line.starts_with("hubspoke") {
                line.clear();
                if stdout.read_line(&mut line).expect("read stdout") == 0 {
                    panic!("hubspoke exited before saying it was ready");
                }
            }
            self.first_line = line.trim().to_string();
            // The rest is read and dropped: a closed pipe would make the next print (timely
            // prints while a cluster forms) kill the process.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        }
    }

    /// The URL a server said it listens on.
    pub fn url(&self) -> String {
        self.first_line
            .rsplit(' ')
            .next()
            .filter(|url| url.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in the first line {:?}", self.first_line))
            .to_string()
    }
}

impl Process {
    /// SIGKILL: the process dies wherever it is, as in a power cut.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit; its exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.signal("-TERM");
        self.exits_within(limit)
    }

    /// Sends a signal (`-STOP`, `-CONT`, …) with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal} {pid}");
    }

    /// Its exit status, if it exits within `limit`.
    pub fn exits_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hubspoke load ARGS --json` to its end; the report it prints.
pub fn load_report(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_hubspoke"))
        .arg("load")
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()
        .expect("run hubspoke load");
    assert!(
        output.status.success(),
        "hubspoke load failed: {}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "hubspoke load printed no JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// A report's latency summary holds real measurements: every percentile is there and above 0.
pub fn assert_latencies_measured(what: &str, summary: &Value) {
    for name in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        let value = summary[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}.{name}"));
        assert!(value > 0.0, "{what}.{name}: {summary}");
    }
}

/// `hubspoke up` on a free loopback port, with a data directory of its own.
pub struct Hubspoke {
    pub process: Process,
    pub base: String,
    /// Kept (and removed) with the last `Hubspoke` that uses it.
    pub data: std::sync::Arc<tempfile::TempDir>,
}

impl Hubspoke {
    pub fn up(args: &[&str]) -> Hubspoke {
        let data = std::sync::Arc::new(tempfile::tempdir().expect("a data directory"));
        Hubspoke::up_in(data, args)
    }

    /// `hubspoke up` on the data directory another one used: a restart.
    pub fn up_in(data: std::sync::Arc<tempfile::TempDir>, args: &[&str]) -> Hubspoke {
        let dir = data.path().to_string_lossy().to_string();
        let mut all = vec!["up", "--listen", "127.0.0.1:0", "--data-dir", &dir];
        all.extend_from_slice(args);
        let process = Process::start(&all);
        let base = process.url();
        Hubspoke {
            process,
            base,
            data,
        }
    }

    /// In `hubspoke up` one listener serves both APIs.
    pub fn api(&self) -> Api {
        Api::new(self.base.clone(), self.base.clone())
    }
}

/// A tansu broker on a free loopback port, started and stopped by `scripts/broker.sh` with a
/// state folder of its own, so tests in parallel each have their own broker.
pub struct Broker {
    pub address: String,
    state: std::path::PathBuf,
}

impl Broker {
    pub fn start(name: &str) -> Broker {
        let state =
            std::env::temp_dir().join(format!("hubspoke-broker-{}-{name}", std::process::id()));
        let output = Command::new(script("broker.sh"))
            .arg("start")
            .env("TANSU_STATE", &state)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/broker.sh");
        assert!(output.status.success(), "scripts/broker.sh start failed");
        let port = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Broker {
            address: format!("127.0.0.1:{port}"),
            state,
        }
    }
}

impl Broker {
    /// The broker stops answering (SIGSTOP), as if unreachable; `resume` brings it back.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = std::fs::read_to_string(self.state.join("tansu.pid")).expect("tansu's pid");
        let status = Command::new("kill").args([signal, pid.trim()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal} tansu");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(script("broker.sh"))
            .arg("stop")
            .env("TANSU_STATE", &self.state)
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// `scripts/NAME` of this repository.
pub fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// A loopback port nothing listens on now (for a process that must be told its port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_explained(limit, what, || {
        let checked = check();
        async move { checked.await.ok_or_else(String::new) }
    })
    .await
}

/// Polls `check` until it returns `Ok`, or panics with `what` and the last `Err`'s explanation
/// (what was still missing) after `limit`.
pub async fn eventually_explained<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let missing = match check().await {
            Ok(value) => return value,
            Err(missing) => missing,
        };
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}\n{missing}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sb` over Kafka on a free loopback port; with `data_dir`, its switches keep their tables
/// there across restarts.
pub fn kafka_sb(kafka: &str, network: &str, data_dir: Option<&str>) -> Process {
    let mut args = vec![
        "sb",
        "--kafka",
        kafka,
        "--listen",
        "127.0.0.1:0",
        "--network",
        network,
    ];
    if let Some(dir) = data_dir {
        args.extend(["--data-dir", dir]);
    }
    Process::start(&args)
}

/// `nb` over Kafka on a free loopback port.
pub fn kafka_nb(kafka: &str) -> Process {
    Process::start(&[
        "nb",
        "--kafka",
        kafka,
        "--listen",
        "127.0.0.1:0",
        "--request-timeout-ms",
        "30000",
    ])
}

/// `sb` and `nb` on free loopback ports, and the `Api` of what they serve.
pub fn edges(kafka: &str, network: &str) -> (Process, Process, Api) {
    let sb = kafka_sb(kafka, network, None);
    let nb = kafka_nb(kafka);
    let api = Api::new(nb.url(), sb.url());
    (sb, nb, api)
}
