//! The validated configuration. Built only by `config::load`/`config::parse`
//! once every check passed; every field has its SPEC §2 default applied.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::model::slo::{CalendarDef, CreditPolicy, CustomerDef, Exclusion, SloDef};
use crate::model::time::Millis;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub state: StateConfig,
    pub http: HttpConfig,
    pub limits: LimitsConfig,
    pub ingest: IngestConfig,
    pub alerting: AlertingConfig,
    pub export: ExportConfig,
    /// Registry, in file order (`customers` then each of `customers_files`).
    pub customers: Vec<CustomerDef>,
    /// By name; `24x7` is always present.
    pub calendars: BTreeMap<String, CalendarDef>,
    pub slos: Vec<SloDef>,
    pub exclusions: Vec<Exclusion>,
    pub credits: Vec<CreditPolicy>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group_id: String,
    pub topics: TopicsConfig,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicsConfig {
    pub tickets: String,
    pub incidents: String,
    pub probes: String,
    pub alerts: String,
    pub dead_letter: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    pub path: PathBuf,
    /// How often the state is committed (written and synced) while events
    /// are being applied: what a crash can make the process read again.
    pub commit_interval: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub admin_token: String,
}

/// Bounds on what events can create (SPEC §2.1 `[limits]`); an event that
/// would go past one is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Registry plus seen customers.
    pub max_customers: usize,
    /// Distinct (segment, timezone) pairs.
    pub max_groups: usize,
    /// Distinct probe `service` values with recent latency state.
    pub max_services: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_customers: 100_000,
            max_groups: 2_000,
            max_services: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    pub max_lateness: Millis,
    pub max_future_skew: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertingConfig {
    pub alertmanager_urls: Vec<String>,
    pub webhook_urls: Vec<String>,
    pub kafka: bool,
    pub resend_interval: Millis,
    pub warn_at: f64,
    pub per_customer_burn_alerts: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    pub per_customer: bool,
}
