//! Restarts: a replay split in two runs over one state directory, and a
//! replay killed with SIGKILL many times then re-run whole, both answer
//! exactly like a single pass.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

#[tokio::test]
async fn split_replay_equals_single_pass() {
    let base = tempfile::tempdir().expect("tempdir");
    let cfg_one = shipped_config(&base.path().join("one"));
    let cfg_two = shipped_config(&base.path().join("two"));
    let lines = sample_lines(&cfg_one, 0.05, 14, 11);
    assert!(
        lines.len() > 10_000,
        "a workload of some size: {}",
        lines.len()
    );
    let (first, second) = lines.split_at(lines.len() / 2);
    let all = base.path().join("all.ndjson");
    let a = base.path().join("a.ndjson");
    let b = base.path().join("b.ndjson");
    write_lines(&all, &lines);
    write_lines(&a, first);
    write_lines(&b, second);

    let single = replay_into(&cfg_one, &all);
    std::fs::create_dir_all(&cfg_two.state.path).expect("state dir");
    drop(replay_into(&cfg_two, &a));
    let split = replay_into(&cfg_two, &b);

    let want = answers(&app(single, golden_now(), ""), &cfg_one).await;
    let got = answers(&app(split, golden_now(), ""), &cfg_two).await;
    assert_eq!(want, got);
}

/// Starts `slastream replay` on `input` and SIGKILLs it `delay` after its
/// first progress line (or at exit, whichever is first). Returns whether it
/// was killed before finishing.
fn replay_and_kill(
    cfg_path: &std::path::Path,
    state: &std::path::Path,
    input: &std::path::Path,
    delay: Duration,
    env: &[(&str, &str)],
) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["replay", "--config"])
        .arg(cfg_path)
        .arg("--input")
        .arg(input)
        .env("SLASTREAM__STATE__PATH", state)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn slastream");
    let stderr = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    // The first progress line says at least one batch is persisted.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.starts_with("replay: ") => break,
            Ok(_) => {}
        }
    }
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    killed
}

#[tokio::test]
async fn replay_killed_repeatedly_then_rerun_equals_single_pass() {
    killed_repeatedly_equals_single_pass(None).await;
}

/// The same with a one-hour lateness, so that probe history and settled
/// tickets leave memory (and come back) between the kills.
#[tokio::test]
async fn replay_killed_repeatedly_with_a_one_hour_window_equals_single_pass() {
    killed_repeatedly_equals_single_pass(Some("1h")).await;
}

async fn killed_repeatedly_equals_single_pass(lateness: Option<&str>) {
    let base = tempfile::tempdir().expect("tempdir");
    let cfg_path = root().join("config/slastream.toml");
    let with_lateness = |mut cfg: slastream::config::Config| {
        if lateness.is_some() {
            cfg.ingest.max_lateness = slastream::model::time::HOUR;
        }
        cfg
    };
    let env: Vec<(&str, &str)> = lateness
        .map(|l| vec![("SLASTREAM__INGEST__MAX_LATENESS", l)])
        .unwrap_or_default();
    let cfg_ref = with_lateness(shipped_config(&base.path().join("ref")));
    let crash_state = base.path().join("crash");
    let lines = sample_lines(&cfg_ref, 0.5, 14, 23);
    let input = base.path().join("events.ndjson");
    write_lines(&input, &lines);

    let mut kills = 0;
    for i in 0..10u64 {
        // Spread the kills over the run: 0..900 ms after the first progress line.
        let delay = Duration::from_millis((i * 397) % 900);
        if replay_and_kill(&cfg_path, &crash_state, &input, delay, &env) {
            kills += 1;
        }
    }
    assert!(
        kills >= 3,
        "the replay must actually be killed mid-way ({kills} kills)"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_slastream"))
        .args(["replay", "--config"])
        .arg(&cfg_path)
        .arg("--input")
        .arg(&input)
        .env("SLASTREAM__STATE__PATH", &crash_state)
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .status()
        .expect("run slastream");
    assert!(status.success());

    let single = replay_into(&cfg_ref, &input);
    let cfg_crash = with_lateness(shipped_config(&crash_state));
    let crashed = restore(&cfg_crash);
    assert_eq!(crashed.watermark(), single.watermark());
    if lateness.is_some() {
        let tickets: std::collections::HashSet<&str> = lines
            .iter()
            .filter_map(|l| l.split("\"ticket_id\":\"").nth(1)?.split('"').next())
            .collect();
        assert!(
            (crashed.footprint().items as usize) < tickets.len() / 2,
            "settled tickets left memory: {} items held, {} tickets",
            crashed.footprint().items,
            tickets.len()
        );
    }
    let want = answers(&app(single, golden_now(), ""), &cfg_ref).await;
    let got = answers(&app(crashed, golden_now(), ""), &cfg_crash).await;
    assert_eq!(want, got);
}

/// `slastream replay` of `input` into `state`, with `env` set; its exit status.
fn replay_status(
    cfg_path: &std::path::Path,
    state: &std::path::Path,
    input: &std::path::Path,
    env: &[(&str, String)],
) -> std::process::ExitStatus {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slastream"));
    cmd.args(["replay", "--config"])
        .arg(cfg_path)
        .arg("--input")
        .arg(input)
        .env("SLASTREAM__STATE__PATH", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status().expect("run slastream")
}

/// A crash right after a commit is written and synced, before anything
/// acknowledges it (the writer aborts the process there), then a re-run of
/// the whole file: nothing is lost, nothing counted twice. Commit 1 is the
/// first chunk's, commit 2 the next one (or the last, which holds the end of
/// the file: the re-run then finds every event already applied).
#[tokio::test]
async fn a_crash_between_a_commits_write_and_its_acknowledgement_loses_and_doubles_nothing() {
    let base = tempfile::tempdir().expect("tempdir");
    let cfg_path = root().join("config/slastream.toml");
    let cfg_ref = shipped_config(&base.path().join("ref"));
    let lines = sample_lines(&cfg_ref, 0.5, 14, 29);
    let input = base.path().join("events.ndjson");
    write_lines(&input, &lines);
    let single = replay_into(&cfg_ref, &input);
    let want = answers(&app(single, golden_now(), ""), &cfg_ref).await;
    for commit in [1u64, 2] {
        let state = base.path().join(format!("crash-{commit}"));
        let crashed = replay_status(
            &cfg_path,
            &state,
            &input,
            &[(
                slastream::store::writer::CRASH_AFTER_COMMIT_ENV,
                commit.to_string(),
            )],
        );
        assert!(
            !crashed.success(),
            "commit {commit}: the process must die after the write"
        );
        assert!(replay_status(&cfg_path, &state, &input, &[]).success());
        let cfg = shipped_config(&state);
        let got = restore(&cfg);
        let got = answers(&app(got, golden_now(), ""), &cfg).await;
        assert_eq!(want, got, "crash after commit {commit}");
    }
}

/// SIGKILL at random moments of a replay, many times over one state, each
/// run reading the whole file again, then a last full run: the answers are
/// those of a single pass. The moments are drawn over the first quarter of an
/// uninterrupted run (a run over a state holding most events is quicker: they
/// are duplicates), so most kills land mid-way whatever the machine's speed.
#[tokio::test]
async fn replay_killed_at_random_moments_then_rerun_equals_single_pass() {
    use rand::{Rng, SeedableRng};
    let base = tempfile::tempdir().expect("tempdir");
    let cfg_path = root().join("config/slastream.toml");
    let cfg_ref = shipped_config(&base.path().join("ref"));
    // Several commits' worth of input at the default interval.
    let lines = sample_lines(&cfg_ref, 1.0, 14, 31);
    let input = base.path().join("events.ndjson");
    write_lines(&input, &lines);
    let timed = std::time::Instant::now();
    assert!(replay_status(&cfg_path, &base.path().join("timed"), &input, &[]).success());
    let run_ms = timed.elapsed().as_millis() as u64;

    let crash_state = base.path().join("crash");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(17);
    let mut kills = 0;
    for _ in 0..12 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_slastream"))
            .args(["replay", "--config"])
            .arg(&cfg_path)
            .arg("--input")
            .arg(&input)
            .env("SLASTREAM__STATE__PATH", &crash_state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn slastream");
        std::thread::sleep(Duration::from_millis(
            rng.random_range(0..(run_ms / 4).max(1)),
        ));
        if matches!(child.try_wait(), Ok(None)) {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        kills >= 6,
        "the replay must actually be killed mid-way ({kills} kills of 12, a run takes {run_ms} ms)"
    );
    assert!(replay_status(&cfg_path, &crash_state, &input, &[]).success());

    let single = replay_into(&cfg_ref, &input);
    let cfg_crash = shipped_config(&crash_state);
    let crashed = restore(&cfg_crash);
    assert_eq!(crashed.watermark(), single.watermark());
    let want = answers(&app(single, golden_now(), ""), &cfg_ref).await;
    let got = answers(&app(crashed, golden_now(), ""), &cfg_crash).await;
    assert_eq!(want, got);
}
