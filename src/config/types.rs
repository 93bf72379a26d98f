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
    /// RocksDB's block cache (bytes): shared by every table, index and
    /// filter blocks included, so the store's reads stay within it.
    pub block_cache: u64,
    /// One memtable (bytes); at most two exist, one being flushed.
    pub write_buffer: u64,
    /// How far behind the watermark each customer's probe buckets stay in
    /// memory (at least `ingest.max_lateness`); older ones are read from
    /// the store.
    pub hot_window: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub admin_token: String,
    /// Every read of the API and the UI needs a token (SPEC §4.1).
    pub read_auth: bool,
    pub tokens: Vec<TokenDef>,
}

/// What a token may do (SPEC §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including mutations.
    Admin,
    /// Every read.
    Viewer,
    /// Reads scoped to the customers the token lists.
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Customer => "customer",
        }
    }
}

/// A named token: only its SHA-256 is known, never the token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDef {
    pub name: String,
    pub sha256: [u8; 32],
    pub role: Role,
    /// Role `customer`: the customers it may read (never empty); else empty.
    pub customers: Vec<String>,
}

// The hash is not secret, but it has no business in logs either.
impl std::fmt::Debug for TokenDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenDef")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("customers", &self.customers)
            .finish_non_exhaustive()
    }
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
    /// `SLOBudgetExhaustionForecast` for rolling windows: fires when the
    /// budget runs out within this long at the 6h burn rate.
    pub forecast_horizon: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    pub per_customer: bool,
}
