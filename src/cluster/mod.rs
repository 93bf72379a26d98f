//! Groundwork of cluster mode (SPEC §8): which task owns a customer
//! (`partition`), and the per-task changelog in Kafka that backs a task's
//! state, written one transaction per commit and fenced per task
//! (`changelog`). The task runtime builds on these two; nothing here knows
//! about the engine.

pub mod changelog;
pub mod partition;
