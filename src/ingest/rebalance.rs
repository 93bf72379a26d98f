//! Group membership: the rebalance callback (it waits until everything
//! applied is durable, then assignments seek to the offsets stored beside
//! the state), the checks made on a new assignment (is the
//! stored offset still in the log? is the assignment whole?), and the
//! decision to rejoin the group when this process holds too few partitions
//! for too long.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::KafkaLag;
use crate::store::writer::Barrier;
use crate::store::{state, Store};

/// How long a subscribed consumer may hold fewer than every partition before
/// it rejoins the group.
pub const REJOIN_AFTER: Duration = Duration::from_secs(30);
/// Rejoins in a row that still leave it short before the consumer gives up
/// (and the process exits non-zero, for its supervisor to restart it).
pub const MAX_REJOINS: u32 = 3;
/// Timeout of one metadata or watermark request; short, so shutdown is
/// never held up for long.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// One assigned partition and the next offset to apply (`None`: nothing
/// stored, read from the beginning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub topic: String,
    pub partition: i32,
    pub next: Option<i64>,
}

/// What the loop and the rebalance callback share. The callback runs on the
/// loop's thread (inside `poll`), so the locks are never contended.
pub struct Shared {
    store: Arc<dyn Store>,
    /// Waits for the state writer: the loop submits everything applied
    /// before it polls, and the callback waits for it to be durable before
    /// partitions move (or are read from their stored offsets).
    flushed: Barrier,
    assigned: Mutex<Vec<Assigned>>,
    generation: AtomicU64,
    fatal: Mutex<Option<String>>,
    lag: Arc<KafkaLag>,
    /// When statistics last came, and whether a broker was up then.
    stats: Mutex<Option<(Instant, bool)>>,
}

impl Shared {
    pub fn new(store: Arc<dyn Store>, lag: Arc<KafkaLag>, flushed: Barrier) -> Shared {
        Shared {
            store,
            flushed,
            assigned: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            fatal: Mutex::new(None),
            lag,
            stats: Mutex::new(None),
        }
    }

    pub fn assigned(&self) -> Vec<Assigned> {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_assigned(&self, a: Vec<Assigned>) {
        *self.assigned.lock().unwrap_or_else(|e| e.into_inner()) = a;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes with every assignment and revocation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn fail(&self, why: String) {
        tracing::error!("{why}");
        *self.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// A fatal error raised inside a callback, once.
    pub fn take_fatal(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// When the last statistics arrived, if a broker was up then.
    pub fn broker_seen_at(&self) -> Option<Instant> {
        let s = *self.stats.lock().unwrap_or_else(|e| e.into_inner());
        s.and_then(|(at, up)| up.then_some(at))
    }
}

pub struct Ctx {
    pub shared: Arc<Shared>,
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.shared.lag.set(topic, *partition, p.consumer_lag);
                }
            }
        }
        let up = stats.brokers.values().any(|b| b.state == "UP");
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), up));
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        // The flush barrier: the state and offsets of everything applied
        // from the partitions held so far reach the disk before they move,
        // and before the offsets a new assignment starts from are read.
        if self.shared.flushed.wait().is_err() {
            self.shared
                .fail("the state writer stopped; the assignment is dropped".to_string());
            let _ = consumer.unassign();
            self.shared.set_assigned(Vec::new());
            return;
        }
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned = Vec::new();
                let mut seek = TopicPartitionList::new();
                for el in tpl.elements() {
                    let next = match state::kafka_position(
                        self.shared.store.as_ref(),
                        el.topic(),
                        el.partition(),
                    ) {
                        Ok(n) => n,
                        Err(e) => {
                            self.shared.fail(format!(
                                "reading the stored offset of {}/{}: {e}",
                                el.topic(),
                                el.partition()
                            ));
                            let _ = consumer.unassign();
                            self.shared.set_assigned(Vec::new());
                            return;
                        }
                    };
                    let offset = next.map(Offset::Offset).unwrap_or(Offset::Beginning);
                    if let Err(e) = seek.add_partition_offset(el.topic(), el.partition(), offset) {
                        self.shared.fail(format!("building the assignment: {e}"));
                        return;
                    }
                    assigned.push(Assigned {
                        topic: el.topic().to_string(),
                        partition: el.partition(),
                        next,
                    });
                }
                tracing::info!(
                    partitions = %describe(&assigned),
                    "partitions assigned; reading from the offsets stored with the state"
                );
                if let Err(e) = consumer.assign(&seek) {
                    self.shared.fail(format!("assigning partitions: {e}"));
                }
                self.shared.set_assigned(assigned);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("partitions revoked");
                let _ = consumer.unassign();
                self.shared.set_assigned(Vec::new());
            }
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
                self.shared.set_assigned(Vec::new());
            }
        }
    }
}

pub fn describe(a: &[Assigned]) -> String {
    a.iter()
        .map(|x| match x.next {
            Some(n) => format!("{}/{}@{n}", x.topic, x.partition),
            None => format!("{}/{}@beginning", x.topic, x.partition),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a newly assigned partition starts, given its stored offset and the
/// log's low and high watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the stored offset (or the beginning when none is stored).
    AsStored,
    /// The stored offset is below the log start (retention ran while we were
    /// down): `skipped` messages are gone; start at `from`.
    Lost { from: i64, skipped: i64 },
    /// The stored offset is beyond the end of the log: the topic was
    /// recreated. Start from the beginning.
    Recreated { stored: i64, high: i64 },
}

impl Start {
    pub fn decide(stored: Option<i64>, low: i64, high: i64) -> Start {
        match stored {
            Some(n) if n < low => Start::Lost {
                from: low,
                skipped: low - n,
            },
            Some(n) if n > high => Start::Recreated { stored: n, high },
            _ => Start::AsStored,
        }
    }
}

/// What to do about the group membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Hold,
    /// Held too few partitions for `REJOIN_AFTER`: leave and join again.
    Rejoin,
    /// Rejoined `MAX_REJOINS` times in vain.
    GiveUp,
}

/// Watches whether this process holds every partition, and decides when a
/// consumer that holds too few for too long rejoins, then gives up.
#[derive(Debug, Default)]
pub struct Membership {
    short_since: Option<Instant>,
    rejoins: u32,
}

impl Membership {
    pub fn observe(&mut self, whole: bool, now: Instant) -> Verdict {
        if whole {
            self.short_since = None;
            self.rejoins = 0;
            return Verdict::Hold;
        }
        let since = *self.short_since.get_or_insert(now);
        if now.saturating_duration_since(since) < REJOIN_AFTER {
            return Verdict::Hold;
        }
        if self.rejoins >= MAX_REJOINS {
            return Verdict::GiveUp;
        }
        self.rejoins += 1;
        self.short_since = Some(now);
        Verdict::Rejoin
    }

    /// Rejoins made since this process last held every partition.
    pub fn rejoins(&self) -> u32 {
        self.rejoins
    }
}

/// Whether this process holds every partition of the input topics (`None`:
/// the metadata could not be read). One instance per consumer group is the
/// supported topology: when another member takes some partitions, this one
/// stops applying (and says so loudly) rather than silently keep half of the
/// state.
pub fn holds_every_partition(
    consumer: &BaseConsumer<Ctx>,
    topics: &[String],
    assigned: &[Assigned],
    shutdown: &CancellationToken,
) -> Option<bool> {
    if assigned.is_empty() {
        return Some(false);
    }
    let mut expected = 0usize;
    for t in topics {
        if shutdown.is_cancelled() {
            return None;
        }
        match consumer.fetch_metadata(Some(t), METADATA_TIMEOUT) {
            Ok(m) => {
                let n: usize = m.topics().iter().map(|x| x.partitions().len()).sum();
                expected += n;
            }
            Err(e) => {
                tracing::warn!(error = %e, topic = %t, "cannot read topic metadata");
                return None;
            }
        }
    }
    let mut tpl = TopicPartitionList::new();
    for a in assigned {
        tpl.add_partition(&a.topic, a.partition);
    }
    if assigned.len() >= expected {
        let _ = consumer.resume(&tpl);
        return Some(true);
    }
    tracing::error!(
        assigned = assigned.len(),
        partitions = expected,
        "another consumer in group holds some partitions; one slastream instance per \
         consumer group is supported, so this instance stays idle until it holds them all"
    );
    let _ = consumer.pause(&tpl);
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_offset_outside_the_log_is_noticed() {
        assert_eq!(Start::decide(None, 5, 10), Start::AsStored);
        assert_eq!(Start::decide(Some(5), 5, 10), Start::AsStored);
        assert_eq!(Start::decide(Some(10), 5, 10), Start::AsStored);
        assert_eq!(
            Start::decide(Some(50), 80, 100),
            Start::Lost {
                from: 80,
                skipped: 30
            }
        );
        assert_eq!(
            Start::decide(Some(100), 0, 30),
            Start::Recreated {
                stored: 100,
                high: 30
            }
        );
    }

    #[test]
    fn holding_too_few_partitions_rejoins_then_gives_up() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        assert_eq!(m.observe(true, t0), Verdict::Hold);
        // Revoked and nothing comes back.
        assert_eq!(m.observe(false, t0), Verdict::Hold);
        assert_eq!(m.observe(false, t0 + REJOIN_AFTER / 2), Verdict::Hold);
        let mut t = t0 + REJOIN_AFTER;
        for n in 1..=MAX_REJOINS {
            assert_eq!(m.observe(false, t), Verdict::Rejoin, "rejoin {n}");
            assert_eq!(m.rejoins(), n);
            assert_eq!(m.observe(false, t + REJOIN_AFTER / 2), Verdict::Hold);
            t += REJOIN_AFTER;
        }
        assert_eq!(m.observe(false, t), Verdict::GiveUp);
    }

    #[test]
    fn a_rejoin_that_works_resets_the_count() {
        let t0 = Instant::now();
        let mut m = Membership::default();
        m.observe(false, t0);
        assert_eq!(m.observe(false, t0 + REJOIN_AFTER), Verdict::Rejoin);
        assert_eq!(m.observe(true, t0 + REJOIN_AFTER * 2), Verdict::Hold);
        assert_eq!(m.rejoins(), 0);
        m.observe(false, t0 + REJOIN_AFTER * 3);
        assert_eq!(m.observe(false, t0 + REJOIN_AFTER * 4), Verdict::Rejoin);
        assert_eq!(m.rejoins(), 1);
    }
}
