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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
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

/// The writer thread's handle, on the submitting side.
pub struct Writer<'scope> {
    tx: Option<SyncSender<Commit>>,
    thread: ScopedJoinHandle<'scope, Result<(), StoreError>>,
    durable: Arc<AtomicU64>,
    submitted: u64,
}

impl<'scope> Writer<'scope> {
    /// Starts the writer thread in `scope`, writing into `store`.
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        store: &'env dyn Store,
        depth: usize,
    ) -> Writer<'scope> {
        let (tx, rx) = sync_channel::<Commit>(depth);
        let durable = Arc::new(AtomicU64::new(0));
        let crash_after = std::env::var(CRASH_AFTER_COMMIT_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        let counter = durable.clone();
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn_scoped(scope, move || write_loop(store, rx, &counter, crash_after))
            // Spawning fails only when the system is out of threads.
            .unwrap_or_else(|e| panic!("starting the state writer thread: {e}"));
        Writer {
            tx: Some(tx),
            thread,
            durable,
            submitted: 0,
        }
    }

    /// Queues `commit`; blocks while `depth` commits are already waiting.
    /// Fails when the writer stopped on a store error (the error itself is
    /// returned by `finish`).
    pub fn submit(&mut self, commit: Commit) -> Result<(), WriterStopped> {
        let tx = self.tx.as_ref().ok_or(WriterStopped)?;
        tx.send(commit).map_err(|_| WriterStopped)?;
        self.submitted += 1;
        Ok(())
    }

    /// Commits submitted so far.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Commits durable so far.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
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
    durable: &AtomicU64,
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
        durable.store(n, Ordering::Release);
        if let Some(f) = commit.on_durable {
            f();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

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
}
