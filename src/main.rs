//! `hubspoke`: the flow workflow manager's one binary. It parses the command line and calls
//! the library (`src/lib.rs`), which assembles the parts.

mod cli;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The flow path allocates many small, short-lived values (envelopes, records, timely
/// batches), and a restart decodes the whole flow log at once: mimalloc gives that memory back
/// to the system where glibc's malloc kept hundreds of MB of it resident, and is faster here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hubspoke",
    version,
    about = "Hub-and-spoke flow workflow manager for network controllers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one process: REST shim, topology, switch simulator, in-process bus.
    Up(cli::up::UpArgs),
    /// The timely topology (hub, speaker, coordinator, allocator) over Kafka.
    Topology(cli::parts::TopologyArgs),
    /// The northbound REST shim over Kafka.
    Nb(cli::parts::NbArgs),
    /// The southbound switch simulator over Kafka, with its /sim/ control API.
    Sb(cli::parts::SbArgs),
    /// The OpenFlow 1.3 speaker over Kafka, in place of `sb`: real switches (Open vSwitch,
    /// hardware) connect to it.
    Speaker(cli::parts::SpeakerArgs),
    /// Print the messages of Kafka topics as they arrive.
    Tail(cli::tail::TailArgs),
    /// Many northbound clients against a running hubspoke: creates flows, waits for them to
    /// be UP, and reports throughput and latency percentiles.
    Load(cli::load::LoadArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up(args) => cli::up::run(args),
        Command::Topology(args) => cli::parts::topology(args),
        Command::Nb(args) => cli::parts::nb(args),
        Command::Sb(args) => cli::parts::sb(args),
        Command::Speaker(args) => cli::parts::speaker(args),
        Command::Tail(args) => cli::tail::tail(args),
        Command::Load(args) => cli::load::load(args),
    }
}
