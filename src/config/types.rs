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
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub admin_token: String,
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
