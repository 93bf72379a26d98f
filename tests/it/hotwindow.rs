//! The hot window (`state.hot_window`): per-customer probe buckets behind it
//! leave memory and are read back from the state directory. Every answer
//! must be the same as with all of them in memory, across restarts and over
//! a month that crosses the boundary.

use std::path::Path;

use slastream::config::Config;
use slastream::engine::Engine;
use slastream::model::time::HOUR;

use crate::common::*;

/// The shipped configuration with a lateness bound of an hour, so a hot
/// window of an hour is allowed, and the given window.
fn config(dir: &Path, hot_window: i64) -> Config {
    let mut cfg = shipped_config(dir);
    cfg.ingest.max_lateness = HOUR;
    cfg.state.hot_window = hot_window;
    cfg
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

    std::fs::create_dir_all(&huge.state.path).expect("state dir");
    std::fs::create_dir_all(&tiny.state.path).expect("state dir");
    let in_memory = replay_into(&huge, &all);
    // Restarted twice on the way, each time from what is stored.
    let mut from_store = None;
    for p in &parts {
        drop(from_store.take());
        from_store = Some(replay_into(&tiny, p));
    }
    let from_store = from_store.expect("three parts replayed");
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
