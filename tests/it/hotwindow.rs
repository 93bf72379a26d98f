//! The hot window (`state.hot_window`): per-customer probe buckets behind it
//! leave memory and are read back from the state directory. Every answer
//! must be the same as with all of them in memory, across restarts and over
//! a month that crosses the boundary.

use std::path::Path;
use std::sync::{Arc, RwLock};

use slastream::app::{replay_file, ReplayOptions};
use slastream::config::Config;
use slastream::engine::Engine;
use slastream::model::time::{ManualClock, HOUR};
use slastream::store::{state, RocksStore, Store};
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// The shipped configuration with a lateness bound of an hour, so a hot
/// window of an hour is allowed, and the given window.
fn config(dir: &Path, hot_window: i64) -> Config {
    let mut cfg = shipped_config(dir);
    cfg.ingest.max_lateness = HOUR;
    cfg.state.hot_window = hot_window;
    cfg
}

/// Replays `input` into the state of `cfg` as `slastream` does (history
/// behind the hot window read from the store).
fn replay_shared(cfg: &Config, input: &Path) {
    std::fs::create_dir_all(&cfg.state.path).expect("state dir");
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&cfg.state.path).expect("open state"));
    let engine = RwLock::new(state::restore_shared(cfg, store.clone()).expect("restore"));
    let opts = ReplayOptions {
        input: input.to_path_buf(),
        then_serve: false,
        dead_letter: None,
        alerts: false,
    };
    let clock = ManualClock::new(golden_now());
    replay_file(
        &opts,
        &engine,
        store.as_ref(),
        &clock,
        &CancellationToken::new(),
    )
    .expect("replay");
}

fn restore_shared(cfg: &Config) -> Engine {
    let store: Arc<dyn Store> = Arc::new(RocksStore::open(&cfg.state.path).expect("open state"));
    state::restore_shared(cfg, store).expect("restore")
}

fn buckets_in_memory(e: &Engine) -> u64 {
    e.footprint().buckets
}

#[tokio::test]
async fn answers_are_the_same_whether_history_is_in_memory_or_in_the_store() {
    let base = tempfile::tempdir().expect("tempdir");
    let huge = config(&base.path().join("huge"), 60 * slastream::model::time::DAY);
    let tiny = config(&base.path().join("tiny"), 0);
    // 14 days of November: the month's answers span the hot boundary.
    let lines = sample_lines(&huge, 0.05, 14, 11);
    let (first, second) = lines.split_at(lines.len() / 3);
    let (second, third) = second.split_at(second.len() / 2);
    let all = base.path().join("all.ndjson");
    write_lines(&all, &lines);
    let parts: Vec<_> = [first, second, third]
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let p = base.path().join(format!("part{i}.ndjson"));
            write_lines(&p, part);
            p
        })
        .collect();

    replay_shared(&huge, &all);
    // Restarted twice on the way, each time from what is stored.
    for p in &parts {
        replay_shared(&tiny, p);
    }
    let in_memory = restore_shared(&huge);
    let from_store = restore_shared(&tiny);
    assert!(
        buckets_in_memory(&from_store) * 4 < buckets_in_memory(&in_memory) * 3,
        "per-customer history left memory (group series stay): {} of {} buckets held",
        buckets_in_memory(&from_store),
        buckets_in_memory(&in_memory)
    );
    let want = answers(&app(in_memory, golden_now(), ""), &huge).await;
    let got = answers(&app(from_store, golden_now(), ""), &tiny).await;
    assert_eq!(want.len(), got.len());
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g);
    }
}
