//! slastream: streaming SLA/SLO monitoring.
//!
//! Codemap: `model` (events, SLO definitions, calendars, time: plain types),
//! `config` (TOML → validated `Config`), `engine` (pure SLA math and windowed
//! state), `store` (RocksDB persistence), `ingest` (Kafka consumer, dead letters,
//! producers), `api` (axum HTTP API), `export`
//! (Prometheus text), `generate` (synthetic workload), `app` (wiring),
//! `alert` (rules, durable alert state, delivery), `ui` (the web UI), `cli`/`report` (command
//! line). See ARCHITECTURE.md.

pub mod alert;
pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dashboards;
pub mod demo;
pub mod engine;
pub mod export;
pub mod generate;
pub mod health;
pub mod ingest;
pub mod model;
pub mod report;
pub mod rules;
pub mod serve;
pub mod store;
pub mod ui;
