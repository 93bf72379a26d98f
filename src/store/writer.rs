//! The commit stage: a thread that writes (and syncs) one `Commit` at a time
//! while the caller goes on decoding and applying. At most `depth` commits
//! wait behind the one being written; `submit` blocks beyond that, so a disk
//! slower than the input slows the input down instead of piling up batches.
//!
//! A commit is one atomic `Batch`: the state, and whatever must be persisted
//! with it (input positions, dead-letter outbox rows). Its `on_durable` runs
//! on the writer thread once the batch is durable, never before: that is
//! where a caller acknowledges what the commit holds. Commits are written in
//! submission order, so an acknowledgement covers every earlier commit too.
//!
//! A `Barrier` waits until everything submitted so far is durable: the Kafka
//! consumer's rebalance callback holds partitions back with it until the
//! state and offsets applied from them are on disk.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use super::{Batch, Store, StoreError};

/// Runs on the writer thread once its commit is durable.
pub type OnDurable = Box<dyn FnOnce() + Send>;

/// One atomic write and what to do once it is durable.
pub struct Commit {
    pub batch: Batch,
    pub on_durable: Option<OnDurable>,
}

impl Commit {
    pub fn new(batch: Batch) -> Commit {
        Commit {
            batch,
            on_durable: None,
        }
    }
}

/// The environment variable naming a commit after whose write the process
/// aborts before acknowledging it: a crash at the worst moment, for the
/// durability tests of the real binary.
pub const CRASH_AFTER_COMMIT_ENV: &str = "SLASTREAM_CRASH_AFTER_COMMIT";

/// Commits submitted and durable so far, shared by the writer thread, its
/// handle and the barriers.
#[derive(Debug, Default)]
struct Progress {
    counts: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    submitted: u64,
    durable: u64,
    /// The writer thread has ended (a store error, a panic, or `finish`).
    stopped: bool,
}

impl Progress {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts());
        self.changed.notify_all();
    }
}

/// Marks the writer stopped however its thread ends, so that no barrier
/// waits for a writer that is gone.
struct StoppedOnDrop<'a>(&'a Progress);

impl Drop for StoppedOnDrop<'_> {
    fn drop(&mut self) {
        self.0.update(|c| c.stopped = true);
    }
}

/// Waits for the commits submitted to one writer to be durable; usable from
/// any thread, for as long as wanted.
#[derive(Debug, Clone)]
pub struct Barrier(Arc<Progress>);

impl Barrier {
    /// Waits until every commit submitted before this call is durable. Fails
    /// when the writer stopped first (its error comes from `Writer::finish`).
    pub fn wait(&self) -> Result<(), WriterStopped> {
        let mut c = self.0.counts();
        let target = c.submitted;
        while c.durable < target && !c.stopped {
            c = self.0.changed.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        if c.durable >= target {
            Ok(())
        } else {
            Err(WriterStopped)
        }
    }
}

/// The writer thread's handle, on the submitting side.
pub struct Writer<'scope> {
    tx: Option<SyncSender<Commit>>,
    thread: ScopedJoinHandle<'scope, Result<(), StoreError>>,
    progress: Arc<Progress>,
}

impl<'scope> Writer<'scope> {
    /// Starts the writer thread in `scope`, writing into `store`.
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        store: &'env dyn Store,
        depth: usize,
    ) -> Writer<'scope> {
        let (tx, rx) = sync_channel::<Commit>(depth);
        let progress = Arc::new(Progress::default());
        let crash_after = std::env::var(CRASH_AFTER_COMMIT_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let shared = progress.clone();
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn_scoped(scope, move || {
                let _stopped = StoppedOnDrop(&shared);
                write_loop(store, rx, &shared, crash_after)
            })
            // Spawning fails only when the system is out of threads.
            .unwrap_or_else(|e| panic!("starting the state writer thread: {e}"));
        Writer {
            tx: Some(tx),
            thread,
            progress,
        }
    }

    /// Queues `commit`; blocks while `depth` commits are already waiting.
    /// Fails when the writer stopped on a store error (the error itself is
    /// returned by `finish`).
    pub fn submit(&mut self, commit: Commit) -> Result<(), WriterStopped> {
        let tx = self.tx.as_ref().ok_or(WriterStopped)?;
        // Counted before it is sent, so that a barrier taken after this call
        // returns waits for it.
        self.progress.update(|c| c.submitted += 1);
        tx.send(commit).map_err(|_| WriterStopped)
    }

    /// Commits submitted so far.
    pub fn submitted(&self) -> u64 {
        self.progress.counts().submitted
    }

    /// Commits durable so far.
    pub fn durable(&self) -> u64 {
        self.progress.counts().durable
    }

    /// A handle that waits for what was submitted to be durable.
    pub fn barrier(&self) -> Barrier {
        Barrier(self.progress.clone())
    }

    /// Waits until every commit submitted so far is durable.
    pub fn sync(&self) -> Result<(), WriterStopped> {
        self.barrier().wait()
    }

    /// Waits until every submitted commit is durable, and returns the store
    /// error that stopped the writer, if one did.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.tx.take();
        match self.thread.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The writer stopped (a store error); `Writer::finish` says which.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the state writer stopped")]
pub struct WriterStopped;

fn write_loop(
    store: &dyn Store,
    rx: Receiver<Commit>,
    progress: &Progress,
    crash_after: Option<u64>,
) -> Result<(), StoreError> {
    let mut n = 0u64;
    for commit in rx {
        store.write(commit.batch)?;
        n += 1;
        if crash_after == Some(n) {
            // Written and synced, not yet acknowledged: the moment a crash
            // must neither lose nor double anything.
            std::process::abort();
        }
        progress.update(|c| c.durable = n);
        if let Some(f) = commit.on_durable {
            f();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::store::MemStore;

    /// A store whose writes can be made to fail.
    #[derive(Default)]
    struct Gated {
        inner: MemStore,
        fail: Mutex<bool>,
    }

    impl Store for Gated {
        fn write(&self, batch: Batch) -> Result<(), StoreError> {
            if *self.fail.lock().unwrap_or_else(|e| e.into_inner()) {
                return Err(StoreError::Corrupt {
                    key: "x".into(),
                    reason: "injected".into(),
                });
            }
            self.inner.write(batch)
        }
        fn scan(&self, prefix: &[u8]) -> Result<crate::store::Entries, StoreError> {
            self.inner.scan(prefix)
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn compact(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn put(k: &str) -> Batch {
        let mut b = Batch::default();
        b.put(k.as_bytes().to_vec(), b"1".to_vec());
        b
    }

    #[test]
    fn commits_are_written_in_order_and_acknowledged_after_the_write() {
        let store = Gated::default();
        let acks = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            let mut w = Writer::spawn(s, &store, 1);
            for i in 0..20 {
                let acks = acks.clone();
                let key = format!("k{i:02}");
                let inner = store.inner.clone();
                w.submit(Commit {
                    batch: put(&key),
                    on_durable: Some(Box::new(move || {
                        // The write is visible when its acknowledgement runs.
                        let seen = inner.get(key.as_bytes()).ok().flatten().is_some();
                        acks.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, seen));
                    })),
                })
                .expect("submit");
            }
            assert_eq!(w.submitted(), 20);
            w.finish().expect("finish");
        });
        let acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(acks, (0..20).map(|i| (i, true)).collect::<Vec<_>>());
        assert_eq!(store.inner.scan(b"k").expect("scan").len(), 20);
    }

    #[test]
    fn a_store_error_stops_the_writer_and_is_returned() {
        let store = Gated::default();
        *store.fail.lock().unwrap_or_else(|e| e.into_inner()) = true;
        std::thread::scope(|s| {
            let mut w = Writer::spawn(s, &store, 1);
            let acked = Arc::new(AtomicU64::new(0));
            // The first submit is accepted; once the writer has failed, a
            // later one is refused.
            let mut refused = false;
            for _ in 0..100 {
                let acked = acked.clone();
                let c = Commit {
                    batch: put("k"),
                    on_durable: Some(Box::new(move || {
                        acked.fetch_add(1, Ordering::SeqCst);
                    })),
                };
                if w.submit(c).is_err() {
                    refused = true;
                    break;
                }
                std::thread::yield_now();
            }
            assert!(refused, "submits go on after the writer failed");
            assert_eq!(w.durable(), 0);
            assert!(matches!(w.finish(), Err(StoreError::Corrupt { .. })));
            assert_eq!(acked.load(Ordering::SeqCst), 0, "nothing acknowledged");
        });
    }

    /// A store whose writes wait until `open` is set.
    #[derive(Default)]
    struct Held {
        inner: MemStore,
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Held {
        fn release(&self) {
            *self.open.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.opened.notify_all();
        }
    }

    impl Store for Held {
        fn write(&self, batch: Batch) -> Result<(), StoreError> {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            while !*open {
                open = self.opened.wait(open).unwrap_or_else(|e| e.into_inner());
            }
            self.inner.write(batch)
        }
        fn scan(&self, prefix: &[u8]) -> Result<crate::store::Entries, StoreError> {
            self.inner.scan(prefix)
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn compact(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn a_barrier_returns_once_everything_submitted_before_it_is_durable() {
        let store = Held::default();
        std::thread::scope(|s| {
            let mut w = Writer::spawn(s, &store, 4);
            for i in 0..3 {
                w.submit(Commit::new(put(&format!("k{i}"))))
                    .expect("submit");
            }
            let barrier = w.barrier();
            let (tx, rx) = std::sync::mpsc::channel();
            let inner = store.inner.clone();
            s.spawn(move || {
                let r = barrier.wait();
                // Everything submitted before the wait is readable when it returns.
                let seen = inner.scan(b"k").map(|e| e.len()).unwrap_or(0);
                let _ = tx.send((r.is_ok(), seen));
            });
            // The writes are held: the barrier does not return.
            assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
            assert_eq!(w.durable(), 0);
            store.release();
            assert_eq!(rx.recv().expect("barrier returned"), (true, 3));
            w.sync().expect("sync");
            assert_eq!(w.durable(), 3);
            w.finish().expect("finish");
        });
    }

    #[test]
    fn a_barrier_does_not_wait_for_a_writer_that_stopped() {
        let store = Gated::default();
        *store.fail.lock().unwrap_or_else(|e| e.into_inner()) = true;
        std::thread::scope(|s| {
            let mut w = Writer::spawn(s, &store, 1);
            w.submit(Commit::new(put("k"))).expect("submit");
            assert!(
                w.barrier().wait().is_err(),
                "the commit never became durable"
            );
            assert!(w.sync().is_err());
            assert!(w.finish().is_err());
        });
    }
}
