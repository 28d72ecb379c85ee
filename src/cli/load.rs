//! `hubspoke load`: the load generator's flags, its progress bar and its output.

use std::io::IsTerminal;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::Args;
use hubspoke_load::{BaselineConfig, LoadConfig, Progress};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use parking_lot::Mutex;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The northbound REST API of a running hubspoke (`up`, or `nb` over Kafka).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_parser = http_url)]
    url: String,
    /// How many flows to create.
    #[arg(long, default_value_t = 1000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    flows: usize,
    /// Clients at once; each has one request in flight.
    #[arg(long, default_value_t = 16, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
    /// Only pairs of active switches connected over links that are up, and a bandwidth low
    /// enough that all flows fit the links, so that the load itself causes no rejection.
    #[arg(long)]
    network_aware: bool,
    /// Bandwidth of each flow in kbps (0: best effort); --network-aware may lower it.
    #[arg(long, default_value_t = 1000)]
    bandwidth: u64,
    /// Delete the flows afterwards, and measure that too.
    #[arg(long)]
    delete: bool,
    /// Seeds the choice of endpoints (the output says which seed a run used).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the figures as JSON on stdout, without a progress bar.
    #[arg(long)]
    json: bool,
    /// How long to wait for one flow (or the network, or a Kafka reply) before giving up on it.
    #[arg(long, default_value_t = 60, value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    timeout_secs: u64,
    /// Also measure a bare request/response round trip through this Kafka broker, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    kafka_baseline: Option<String>,
    /// Round trips the Kafka baseline measures (after a warm-up).
    #[arg(long, default_value_t = 1000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    baseline_samples: usize,
}

/// An indicatif bar on stderr, one per stage.
struct ProgressBarView {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for ProgressBarView {
    fn stage(&self, name: &str, total: u64) {
        let mut current = self.bar.lock();
        // Finished before the next bar is made: a new bar draws at once, over the old one.
        if let Some(previous) = current.take() {
            previous.finish();
        }
        let style = ProgressStyle::with_template(
            "{prefix:>18} [{elapsed_precise}] {wide_bar} {pos}/{len} ({rate}, {eta} left)",
        )
        .map(|style| {
            style.with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = ProgressBar::new(total).with_style(style);
        bar.set_prefix(name.to_string());
        *current = Some(bar);
    }

    fn advance(&self) {
        if let Some(bar) = &*self.bar.lock() {
            bar.inc(1);
        }
    }
}

impl Drop for ProgressBarView {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.lock().take() {
            bar.finish();
        }
    }
}

/// No bar: for --json and output that is not a terminal.
struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _name: &str, _total: u64) {}
    fn advance(&self) {}
}

pub fn load(args: LoadArgs) -> anyhow::Result<()> {
    let config = LoadConfig {
        url: args.url,
        flows: args.flows,
        concurrency: args.concurrency,
        network_aware: args.network_aware,
        bandwidth_kbps: args.bandwidth,
        delete: args.delete,
        seed: args.seed,
        timeout: Duration::from_secs(args.timeout_secs),
        kafka_baseline: args.kafka_baseline.map(|brokers| BaselineConfig {
            brokers,
            samples: args.baseline_samples,
        }),
    };
    let progress: Box<dyn Progress> = if args.json || !std::io::stdout().is_terminal() {
        Box::new(NoProgress)
    } else {
        Box::new(ProgressBarView {
            bar: Mutex::new(None),
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(hubspoke_load::run(&config, progress.as_ref()))?;
    // The bar is done before the figures are printed.
    drop(progress);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `--url` must be an http(s) address; anything else is refused before the run.
fn http_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    if rest.trim_end_matches('/').is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    Ok(url.to_string())
}
