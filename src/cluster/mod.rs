//! Groundwork of cluster mode (SPEC §8): which task owns a customer
//! (`partition`), the per-task changelog in Kafka that backs a task's
//! state, written one transaction per commit and fenced per task
//! (`changelog`), and answers for the whole cluster from the tasks' parts
//! (`merge`). The task runtime builds on these.

pub mod changelog;
pub mod merge;
pub mod partition;
