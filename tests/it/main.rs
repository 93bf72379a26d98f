//! Integration tests: one binary, real RocksDB, the real router, the real
//! `slastream` executable where a process must die.

mod access;
mod alerts;
mod api;
mod bigincident;
mod cli;
mod cluster;
mod common;
mod dashboards;
mod deploy;
mod golden;
mod history;
mod hotwindow;
mod input;
mod kafka;
mod liveness;
mod metrics;
mod reads;
mod restart;
mod ui;
