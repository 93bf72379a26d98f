//! Log-based fencing of a task's changelog, for brokers where Kafka
//! transactions are unusable (tansu 0.6 does not advertise EndTxn): a new
//! owner of task p appends a claim record to partition p, and every later
//! record of that owner names the claim's epoch. The log's order decides who
//! owns the task at every offset; nothing else has to be coordinated.
//!
//! Record format (partition p of the changelog topic):
//! - the claim: key [`CLAIM_PREFIX`]`<writer>`, value the epoch (8 bytes,
//!   big-endian) followed by the claimer's writer id (UTF-8); headers as
//!   any record, with batch number 0;
//! - every other record of a claiming writer carries the header
//!   [`HEADER_EPOCH`] (decimal ASCII) besides `slastream.writer` and
//!   `slastream.seq`.
//!
//! The rule ([`ClaimRule`], pure): the owner at an offset is the claim with
//! the highest epoch read so far, the first of equal epochs winning; a
//! record applies only if its epoch and writer are the owner's. A claimer
//! takes 1 + the highest epoch it read, so in a log written by the protocol
//! epochs grow along the log; a later claim with an epoch no higher than the
//! owner's is a lost race or a stale claimer and owns nothing.
//!
//! Every claim has a key of its own (one per open of a task), so compaction
//! never removes one: with a single fixed key it would keep only the last
//! claim, and when that is a lost or stale claim written after the owner's,
//! the owner's records would read as a zombie's. The price is one record
//! per open kept forever. As a second line, the rule takes a record with an
//! epoch above the owner's as the sign of a newer owner whose claim it has
//! not read (a restore starting past it).

/// Key prefix of the claim records; the claimer's writer id follows.
pub const CLAIM_PREFIX: &[u8] = b"\0claim/";

/// Whether a record with key `key` is a claim.
pub fn is_claim(key: Option<&[u8]>) -> bool {
    key.is_some_and(|k| k.starts_with(CLAIM_PREFIX))
}
/// Header with the writer's epoch (decimal ASCII).
pub const HEADER_EPOCH: &str = "slastream.epoch";

/// A claim: the epoch and the writer (one open of a task) that made it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    pub epoch: u64,
    pub writer: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimError {
    #[error("claim value of {len} bytes: needs an 8-byte epoch and a writer id")]
    Short { len: usize },
    #[error("claim value: the writer id is not UTF-8")]
    Writer,
}

impl Claim {
    /// The claim record's key.
    pub fn key(&self) -> Vec<u8> {
        let mut k = CLAIM_PREFIX.to_vec();
        k.extend_from_slice(self.writer.as_bytes());
        k
    }

    /// The claim record's value.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.epoch.to_be_bytes().to_vec();
        v.extend_from_slice(self.writer.as_bytes());
        v
    }

    pub fn decode(value: &[u8]) -> Result<Claim, ClaimError> {
        if value.len() <= 8 {
            return Err(ClaimError::Short { len: value.len() });
        }
        let (epoch, writer) = value.split_at(8);
        let mut e = [0u8; 8];
        e.copy_from_slice(epoch);
        let writer = std::str::from_utf8(writer).map_err(|_| ClaimError::Writer)?;
        Ok(Claim {
            epoch: u64::from_be_bytes(e),
            writer: writer.to_string(),
        })
    }
}

/// Who owns the task at each point of its changelog (see the module).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimRule {
    owner: Option<Claim>,
    dropped: u64,
    stale_claims: u64,
}

impl ClaimRule {
    /// The rule as it stood where a restore stopped: `owner` is what
    /// [`ClaimRule::owner`] said there.
    pub fn resume(owner: Option<Claim>) -> ClaimRule {
        ClaimRule {
            owner,
            ..ClaimRule::default()
        }
    }

    /// The owner at the point read so far.
    pub fn owner(&self) -> Option<&Claim> {
        self.owner.as_ref()
    }

    /// The highest epoch read so far: a new claim takes one more.
    pub fn epoch(&self) -> u64 {
        self.owner.as_ref().map_or(0, |c| c.epoch)
    }

    /// Records dropped as a superseded writer's.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Claims that owned nothing: an epoch no higher than the owner's.
    pub fn stale_claims(&self) -> u64 {
        self.stale_claims
    }

    /// A claim record read next; whether it took the task.
    pub fn claim(&mut self, claim: Claim) -> bool {
        if claim.epoch > self.epoch() || self.owner.is_none() {
            self.owner = Some(claim);
            true
        } else {
            self.stale_claims += 1;
            false
        }
    }

    /// A record of `writer` at `epoch` read next (a state change or a
    /// trailer); whether it applies.
    pub fn admit(&mut self, writer: &str, epoch: u64) -> bool {
        match &self.owner {
            Some(o) if o.epoch == epoch && o.writer == writer => true,
            Some(o) if epoch <= o.epoch => {
                self.dropped += 1;
                false
            }
            // A newer owner whose claim compaction removed.
            _ => {
                self.owner = Some(Claim {
                    epoch,
                    writer: writer.to_string(),
                });
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::cluster::changelog::{trailer_key, LogRecord, Op, TrailerRule};

    fn claim(epoch: u64, writer: &str) -> Claim {
        Claim {
            epoch,
            writer: writer.into(),
        }
    }

    #[test]
    fn a_claim_value_round_trips_and_a_short_one_is_refused() {
        let c = claim(7, "w1");
        assert_eq!(Claim::decode(&c.encode()), Ok(c));
        assert_eq!(Claim::decode(&[0; 8]), Err(ClaimError::Short { len: 8 }));
        let mut bad = 1u64.to_be_bytes().to_vec();
        bad.push(0xff);
        assert_eq!(Claim::decode(&bad), Err(ClaimError::Writer));
    }

    #[test]
    fn a_zombie_after_a_newer_claim_is_dropped_and_a_stale_claim_owns_nothing() {
        let mut rule = ClaimRule::default();
        assert!(rule.claim(claim(1, "a")));
        assert!(rule.admit("a", 1));
        assert!(rule.claim(claim(2, "b")));
        assert!(!rule.admit("a", 1), "zombie");
        assert!(rule.admit("b", 2));
        assert!(!rule.claim(claim(2, "c")), "lost race: same epoch, later");
        assert!(!rule.claim(claim(1, "d")), "stale claimer");
        assert!(rule.admit("b", 2));
        assert!(!rule.admit("c", 2));
        assert_eq!((rule.dropped(), rule.stale_claims()), (2, 2));
    }

    #[test]
    fn a_record_of_a_higher_epoch_stands_for_its_compacted_claim() {
        let mut rule = ClaimRule::default();
        assert!(rule.admit("a", 1));
        assert!(rule.admit("b", 3));
        assert!(!rule.admit("a", 1));
        assert_eq!(rule.owner(), Some(&claim(3, "b")));
        // Resumed from a checkpoint taken here.
        let mut resumed = ClaimRule::resume(rule.owner().cloned());
        assert!(!resumed.admit("a", 1));
        assert!(resumed.admit("b", 3));
    }

    // ---- The rule over whole logs: writers, zombies, crashes, compaction.

    type State = BTreeMap<Vec<u8>, Vec<u8>>;

    /// One record of a generated log; `applied`: it belongs to a batch the
    /// oracle applies.
    #[derive(Debug, Clone)]
    enum Rec {
        Claim {
            offset: i64,
            claim: Claim,
        },
        Data {
            rec: LogRecord,
            epoch: u64,
            applied: bool,
        },
    }

    impl Rec {
        fn offset(&self) -> i64 {
            match self {
                Rec::Claim { offset, .. } => *offset,
                Rec::Data { rec, .. } => rec.offset,
            }
        }
        fn key(&self) -> Vec<u8> {
            match self {
                Rec::Claim { claim, .. } => claim.key(),
                Rec::Data { rec, .. } => rec.key.clone(),
            }
        }
    }

    /// What happens next in a task's life.
    #[derive(Debug, Clone)]
    enum Step {
        /// A new writer claims the task (epoch 1 + the highest so far).
        Claim,
        /// A late claimer whose read missed the newest claims: an epoch
        /// no higher than the owner's.
        StaleClaim,
        /// Writer `w` (an index among the writers so far) writes a batch.
        /// `cut`: it dies (or is fenced and stops) after that many of its
        /// records, trailer included; `claimed`: a new writer's claim
        /// lands after that many, and it goes on writing as a zombie.
        Batch {
            w: prop::sample::Index,
            ops: Vec<Op>,
            cut: Option<prop::sample::Index>,
            claimed: Option<prop::sample::Index>,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        (
            0u8..6,
            prop_oneof![
                3 => any::<u8>().prop_map(|v| Some(vec![v])),
                1 => Just(None),
            ],
        )
            .prop_map(|(k, v)| (format!("k{k}").into_bytes(), v))
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => Just(Step::Claim),
            1 => Just(Step::StaleClaim),
            8 => (
                any::<prop::sample::Index>(),
                prop::collection::vec(op(), 0..4),
                prop::option::weighted(0.15, any::<prop::sample::Index>()),
                prop::option::weighted(0.15, any::<prop::sample::Index>()),
            )
                .prop_map(|(w, ops, cut, claimed)| Step::Batch { w, ops, cut, claimed }),
        ]
    }

    /// Writers of the generated log: (id, epoch, last batch number, dead).
    type Writers = Vec<(String, u64, u64, bool)>;

    /// Appends a claim by a new writer, unless there are three already.
    fn new_claim(log: &mut Vec<Rec>, writers: &mut Writers, epoch: u64, dead: bool) -> bool {
        if writers.len() >= 3 {
            return false;
        }
        let id = format!("w{}", writers.len());
        log.push(Rec::Claim {
            offset: log.last().map_or(0, |r| r.offset() + 1),
            claim: claim(epoch, &id),
        });
        writers.push((id, epoch, 0, dead));
        true
    }

    /// The log the steps leave, and the oracle: every batch applied whose
    /// records, trailer included, all reached the log while its writer's
    /// claim was the owner (before any newer claim). At most three
    /// writers.
    fn log_of(steps: &[Step]) -> (Vec<Rec>, State) {
        let mut log = Vec::new();
        let mut oracle = State::new();
        let mut writers = Writers::new();
        let mut owner: Option<usize> = None;
        let mut top = 0u64;
        for s in steps {
            match s {
                Step::Claim if new_claim(&mut log, &mut writers, top + 1, false) => {
                    top += 1;
                    owner = Some(writers.len() - 1);
                }
                Step::StaleClaim if top > 0 => {
                    // The top epoch (a lost race) or one below (an older
                    // read). It reads its claim back, sees it lost and
                    // never writes.
                    let epoch = top - (log.len() as u64 % top.min(2));
                    new_claim(&mut log, &mut writers, epoch, true);
                }
                Step::Batch {
                    w,
                    ops,
                    cut,
                    claimed,
                } if !writers.is_empty() => {
                    let i = w.index(writers.len());
                    if writers[i].3 {
                        continue;
                    }
                    writers[i].2 += 1;
                    let (id, epoch, seq) = (writers[i].0.clone(), writers[i].1, writers[i].2);
                    let mut recs: Vec<Op> = ops.clone();
                    recs.push((trailer_key(&id), Some(seq.to_string().into_bytes())));
                    let total = recs.len();
                    let n = cut.as_ref().map_or(total, |c| c.index(total));
                    let claim_at = claimed.as_ref().map(|c| c.index(total));
                    // A claim lands mid-batch only among the records written.
                    let claim_lands = claim_at.is_some_and(|j| j < n) && writers.len() < 3;
                    let applies = owner == Some(i) && n == total && !claim_lands;
                    for (j, (key, value)) in recs.into_iter().take(n).enumerate() {
                        if claim_at == Some(j) && new_claim(&mut log, &mut writers, top + 1, false)
                        {
                            top += 1;
                            owner = Some(writers.len() - 1);
                        }
                        log.push(Rec::Data {
                            rec: LogRecord {
                                offset: log.last().map_or(0, |r| r.offset() + 1),
                                writer: id.clone(),
                                seq,
                                key,
                                value,
                            },
                            epoch,
                            applied: applies,
                        });
                    }
                    if n < total {
                        writers[i].3 = true;
                    }
                    if applies {
                        for (k, v) in ops {
                            match v {
                                Some(v) => oracle.insert(k.clone(), v.clone()),
                                None => oracle.remove(k),
                            };
                        }
                    }
                }
                _ => {}
            }
        }
        (log, oracle)
    }

    /// Compaction of the records before `cut`: a record goes when a later
    /// applied record or claim has its key (so no claim goes: each has a key
    /// of its own). A record the rules drop (a zombie's, a partial batch's) may
    /// go at random and shadows nothing: the claim protocol does not stop a
    /// broker's cleaner from letting it shadow (see ARCHITECTURE.md,
    /// Changelog).
    fn compact(log: &[Rec], cut: usize, drops: &[bool]) -> Vec<Rec> {
        let mut last: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        for (i, r) in log.iter().enumerate() {
            if matches!(r, Rec::Claim { .. } | Rec::Data { applied: true, .. }) {
                last.insert(r.key(), i);
            }
        }
        let mut drop = drops.iter().cycle();
        log.iter()
            .enumerate()
            .filter(|(i, r)| {
                if *i >= cut {
                    return true;
                }
                let coin = *drop.next().unwrap_or(&false);
                if let Rec::Data { applied: false, .. } = r {
                    return !coin;
                }
                last.get(&r.key()) == Some(i)
            })
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// A restore's resume point: offset, owner there, state applied.
    type Checkpoint = (i64, Option<Claim>, State);

    /// Restores `log` onto `state` through the claim rule and the trailer
    /// rule, starting with `owner`; a checkpoint at every release.
    fn restore(state: &mut State, log: &[Rec], owner: Option<Claim>) -> Vec<Checkpoint> {
        let mut claims = ClaimRule::resume(owner);
        let mut trailers = TrailerRule::default();
        let mut checkpoints = Vec::new();
        for r in log {
            match r {
                Rec::Claim { claim, .. } => {
                    claims.claim(claim.clone());
                }
                Rec::Data { rec, epoch, .. } => {
                    if !claims.admit(&rec.writer, *epoch) {
                        continue;
                    }
                    for rel in trailers.push(rec.clone()).expect("well-formed log") {
                        for (k, v) in &rel.ops {
                            match v {
                                Some(v) => state.insert(k.clone(), v.clone()),
                                None => state.remove(k),
                            };
                        }
                        checkpoints.push((rel.next_offset, claims.owner().cloned(), state.clone()));
                    }
                }
            }
        }
        trailers.finish();
        checkpoints
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever the claims, zombies, crashes mid-batch and compaction,
        /// a restore applies exactly each owner's complete batches written
        /// before the next claim; and resuming from any checkpoint it
        /// handed out ends the same.
        #[test]
        fn restore_applies_exactly_each_owners_complete_batches_before_the_next_claim(
            steps in prop::collection::vec(step(), 1..40),
            compaction in prop::option::of((0.0f64..=1.0, prop::collection::vec(any::<bool>(), 1..8))),
            resume_at in any::<prop::sample::Index>(),
        ) {
            let (mut log, oracle) = log_of(&steps);
            if let Some((fraction, drops)) = compaction {
                let cut = (log.len() as f64 * fraction) as usize;
                log = compact(&log, cut, &drops);
            }
            let mut state = State::new();
            let checkpoints = restore(&mut state, &log, None);
            prop_assert_eq!(&state, &oracle);

            if !checkpoints.is_empty() {
                let (from, owner, mut state) =
                    checkpoints[resume_at.index(checkpoints.len())].clone();
                let tail: Vec<Rec> = log.iter().filter(|r| r.offset() >= from).cloned().collect();
                restore(&mut state, &tail, owner);
                prop_assert_eq!(&state, &oracle);
            }
        }
    }
}
