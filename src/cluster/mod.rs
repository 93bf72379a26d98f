//! Groundwork of cluster mode (SPEC §8): which task owns a customer
//! (`partition`), and the per-task changelog in Kafka that backs a task's
//! state, fenced per task by a claim record in the log or by a Kafka
//! transaction (`changelog`, `claim`). The task runtime builds on these;
//! nothing here knows about the engine.

pub mod changelog;
pub mod claim;
pub mod partition;
