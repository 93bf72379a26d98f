//! The command line of SPEC §7.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slastream",
    version,
    about = "Streaming SLA/SLO monitoring: compliance, error budgets, breach alerts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole product on one machine: embedded broker, generator, pipeline, API.
    Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run the simulated clock N times faster than the wall clock
        /// (60 = an hour a minute; 43200 = a month a minute).
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
    },
    /// Production: consume the configured Kafka topics.
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Feed the engine from an NDJSON file.
    Replay {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        input: PathBuf,
        /// Keep serving the API after the file was read.
        #[arg(long)]
        then_serve: bool,
        /// Write invalid and late lines here as NDJSON {"error","line","raw"}.
        #[arg(long)]
        dead_letter: Option<PathBuf>,
        /// Deliver alerts (a backfill pages no one by default).
        #[arg(long)]
        alerts: bool,
    },
    /// Synthetic events to stdout (NDJSON) or Kafka.
    Generate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Events per second of simulated time.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 12)]
        customers: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated time span, e.g. 1h, 7d.
        #[arg(long, default_value = "1h")]
        duration: String,
        /// First event time (RFC 3339); default: now minus the duration.
        #[arg(long)]
        start: Option<String>,
        /// Produce to these Kafka brokers instead of stdout.
        #[arg(long)]
        kafka: Option<String>,
    },
    /// Validate a configuration file; exit 2 listing every problem.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also list how the SLO definitions differ from those this state
        /// directory last ran with (read only: nothing is changed).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Print Prometheus recording and alerting rules (YAML).
    Rules {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Fetch a monthly report from a running slastream.
    Report {
        #[arg(long)]
        url: String,
        #[arg(long)]
        month: String,
        #[arg(long, default_value = "table")]
        format: String,
    },
}
