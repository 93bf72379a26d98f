//! Groundwork of cluster mode (SPEC §8): which task owns a customer
//! (`partition`), the per-task changelog in Kafka that backs a task's
//! state, fenced per task by a claim record in the log or by a Kafka
//! transaction (`changelog`, `claim`), and answers for the whole cluster
//! from the tasks' parts (`merge`). The task runtime builds on these.

pub mod changelog;
pub mod claim;
pub mod merge;
pub mod partition;
