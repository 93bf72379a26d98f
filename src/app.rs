//! Wiring: opens the state, feeds the engine (from a file for `replay`),
//! persists one batch per group of events, serves the API, drains on
//! cancellation. One `CancellationToken` is the root of every task.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::alert::deliver::Alerter;
use crate::api::{self, AppState, MetricsFn};
use crate::config::Config;
use crate::engine::{Engine, IngestCounts};
use crate::export::{ExportOptions, PipelineMetrics};
use crate::health::Health;
use crate::ingest::consumer::ConsumerEnv;
use crate::ingest::process::{process_decoded, DecodedLines};
use crate::ingest::KafkaLag;
use crate::model::time::{Clock, WallClock};
use crate::store::writer::{Commit, OnDurable, Writer};
use crate::store::{state, RocksStore, Store};

pub struct ReplayOptions {
    pub input: PathBuf,
    pub then_serve: bool,
    pub dead_letter: Option<PathBuf>,
    pub alerts: bool,
}

/// Opens (or creates) the RocksDB state directory of `cfg`.
pub fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&cfg.state.path)
        .with_context(|| format!("creating state directory {}", cfg.state.path.display()))?;
    Ok(Arc::new(RocksStore::open_tuned(
        &cfg.state.path,
        crate::store::Tuning::of(&cfg.state),
    )?))
}

/// Opens (or creates) the state directory and restores the engine from it.
pub fn open_state(cfg: &Config) -> anyhow::Result<(Engine, Arc<dyn Store>)> {
    let store = open_store(cfg)?;
    let engine = state::restore_shared(cfg, store.clone())?;
    Ok((engine, store))
}

/// Opens a store with `open` and restores the engine from it, on the
/// blocking pool (the HTTP server keeps answering `/healthz` meanwhile).
pub async fn load_state(
    cfg: &Config,
    open: StoreOpener,
) -> anyhow::Result<(Arc<RwLock<Engine>>, Arc<dyn Store>)> {
    let cfg = cfg.clone();
    let started = Instant::now();
    let (engine, store) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let store = open(&cfg)?;
        let engine = state::restore_shared(&cfg, store.clone())?;
        Ok((engine, store))
    })
    .await
    .map_err(|e| anyhow::anyhow!("loading the state: {}", crate::health::join_error(&e)))??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "state loaded"
    );
    engine.footprint().log("restored");
    Ok((Arc::new(RwLock::new(engine)), store))
}

/// How a command opens its store: RocksDB in production; tests inject
/// stores that fail.
pub type StoreOpener = Box<dyn FnOnce(&Config) -> anyhow::Result<Arc<dyn Store>> + Send>;

fn metrics_fn(opts: ExportOptions) -> MetricsFn {
    Arc::new(move |engine: &Engine, now| crate::export::render(engine, now, &opts))
}

/// `slastream run`: the engine fed from Kafka, the API served beside it.
/// Returns when `shutdown` is cancelled (after persisting), or with the
/// failure when a part of the pipeline failed (which stops the others).
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(cfg, shutdown, Box::new(open_store)).await
}

/// `run` with the store opened by `open`.
pub async fn run_with(
    cfg: Config,
    shutdown: CancellationToken,
    open: StoreOpener,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(shutdown.clone()));
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let lag = Arc::new(KafkaLag::default());
    let pipeline = Arc::new(PipelineMetrics::new());
    let app = AppState::loading(
        clock.clone(),
        crate::api::ApiOptions::from_config(&cfg),
        metrics_fn(ExportOptions {
            lag: Some(lag.clone()),
            pipeline: Some(pipeline.clone()),
            ..ExportOptions::from_config(&cfg)
        }),
        health.clone(),
    );
    let server = spawn_server(&cfg, app.clone(), &health, &shutdown).await?;
    let (engine, store) = match load_state(&cfg, open).await {
        Ok(x) => x,
        Err(e) => {
            shutdown.cancel();
            let _ = server.await;
            return Err(e);
        }
    };
    app.set_loaded(engine.clone(), store.clone());
    let tasks = spawn_ingest(
        &cfg,
        IngestParts {
            engine,
            store,
            clock,
            ready: app.ready.clone(),
            lag,
            pipeline,
            health: health.clone(),
        },
        &shutdown,
    )?;
    tasks.join().await;
    let _ = server.await;
    health.check()
}

/// Binds the API's address and serves it until `shutdown`; a server that
/// stops on its own fails the process.
pub async fn spawn_server(
    cfg: &Config,
    app: AppState,
    health: &Arc<Health>,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("binding {}", cfg.http.listen))?;
    tracing::info!(addr = %cfg.http.listen, "serving the API");
    let task = tokio::spawn(crate::serve::serve(
        listener,
        api::router(app),
        crate::serve::Limits::default(),
        shutdown.clone(),
    ));
    let health = health.clone();
    Ok(tokio::spawn(async move {
        health.watch("HTTP server", task).await
    }))
}

/// What the Kafka consumer and the alert loop share with the API.
pub struct IngestParts {
    pub engine: Arc<RwLock<Engine>>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Set by the consumer while it holds every partition.
    pub ready: Arc<AtomicBool>,
    pub lag: Arc<KafkaLag>,
    pub pipeline: Arc<PipelineMetrics>,
    pub health: Arc<Health>,
}

/// The consumer (on a blocking thread) and the alert loop, started by
/// `slastream run` and the demo alike, each watched by `Health`.
pub struct IngestTasks {
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl IngestTasks {
    /// Waits until both have stopped (after shutdown or a failure).
    pub async fn join(self) {
        for w in self.watchers {
            let _ = w.await;
        }
    }
}

/// Starts the alert loop and the consumer; either one failing or panicking
/// fails the process (`Health`), which cancels `shutdown`. The consumer
/// wakes the alert loop after every batch.
pub fn spawn_ingest(
    cfg: &Config,
    parts: IngestParts,
    shutdown: &CancellationToken,
) -> anyhow::Result<IngestTasks> {
    let IngestParts {
        engine,
        store,
        clock,
        ready,
        lag,
        pipeline,
        health,
    } = parts;
    let wake = Arc::new(tokio::sync::Notify::new());
    // Alerts hold until the consumer has read what was waiting for it (after
    // a start, a rebalance or a broker outage), so nothing that happened
    // meanwhile pages as a breach.
    let caught_up = Arc::new(AtomicBool::new(false));
    let alerter = Alerter::open(
        cfg,
        engine.clone(),
        store.clone(),
        clock.clone(),
        Some(pipeline.clone()),
        true,
        caught_up.clone(),
    )?;
    let alerts = {
        let token = shutdown.clone();
        let wake = wake.clone();
        tokio::spawn(async move { alerter.run(token, wake).await })
    };
    let consumer = {
        let token = shutdown.clone();
        let cfg = cfg.clone();
        let ready = ready.clone();
        tokio::task::spawn_blocking(move || {
            let env = ConsumerEnv {
                engine: &engine,
                store,
                clock: clock.as_ref(),
                shutdown: &token,
                ready: &ready,
                caught_up,
                lag,
                metrics: Some(pipeline),
                batch_done: Some(wake),
            };
            crate::ingest::run_consumer(&cfg, env)
        })
    };
    let watch = |part: &'static str, task| {
        let health = health.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            health.watch(part, task).await;
            ready.store(false, Ordering::SeqCst);
        })
    };
    Ok(IngestTasks {
        watchers: vec![
            watch("consumer", consumer_result(consumer)),
            watch("alert loop", alerts),
        ],
    })
}

/// The consumer's task with its summary dropped, so both tasks have one type.
fn consumer_result(
    task: tokio::task::JoinHandle<anyhow::Result<crate::ingest::ConsumerSummary>>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        match task.await {
            Ok(r) => r.map(|_| ()),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!(crate::health::join_error(&e))),
        }
    })
}

/// `slastream replay`: the engine fed from an NDJSON file.
pub async fn replay(
    cfg: Config,
    opts: ReplayOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(shutdown.clone()));
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let app = AppState::loading(
        clock.clone(),
        crate::api::ApiOptions::from_config(&cfg),
        metrics_fn(ExportOptions {
            pipeline: Some(Arc::new(PipelineMetrics::new())),
            ..ExportOptions::from_config(&cfg)
        }),
        health.clone(),
    );
    // Serving starts first, so `/healthz` answers while the state loads.
    let server = if opts.then_serve {
        Some(spawn_server(&cfg, app.clone(), &health, &shutdown).await?)
    } else {
        None
    };
    let (engine, store) = match load_state(&cfg, Box::new(open_store)).await {
        Ok(x) => x,
        Err(e) => {
            shutdown.cancel();
            if let Some(s) = server {
                let _ = s.await;
            }
            return Err(e);
        }
    };
    app.set_loaded(engine.clone(), store.clone());
    // A backfill pages nobody unless asked (`--alerts`).
    let then_serve = opts.then_serve;
    let mut alerter = if opts.alerts {
        Some(Alerter::open(
            &cfg,
            engine.clone(),
            store.clone(),
            clock.clone(),
            None,
            true,
            // The file is read to its end before the alerter starts.
            Arc::new(AtomicBool::new(true)),
        )?)
    } else {
        None
    };
    let feed = {
        let engine = engine.clone();
        let store = store.clone();
        let shutdown = shutdown.clone();
        let clock = clock.clone();
        let every = Duration::from_millis(cfg.state.commit_interval.unsigned_abs());
        tokio::task::spawn_blocking(move || {
            replay_file_every(
                &opts,
                &engine,
                store.as_ref(),
                clock.as_ref(),
                &shutdown,
                every,
            )
        })
    };
    let summary = match feed.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            health.fail("replay", format!("{e:#}"));
            if let Some(s) = server {
                let _ = s.await;
            }
            return health.check();
        }
        Err(e) => {
            health.fail("replay", crate::health::join_error(&e));
            if let Some(s) = server {
                let _ = s.await;
            }
            return health.check();
        }
    };
    eprintln!("{summary}");
    engine
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .footprint()
        .log("replayed");
    let alerts = match alerter.take() {
        // Serving: keep evaluating as the clock moves.
        Some(a) if then_serve => {
            let token = shutdown.clone();
            let task =
                tokio::spawn(
                    async move { a.run(token, Arc::new(tokio::sync::Notify::new())).await },
                );
            let health = health.clone();
            Some(tokio::spawn(async move {
                health.watch("alert loop", task).await
            }))
        }
        // One evaluation over the whole file, delivered before exiting.
        Some(mut a) => {
            a.evaluate()?;
            a.deliver_once().await?;
            None
        }
        None => None,
    };
    if let Some(server) = server {
        if !shutdown.is_cancelled() {
            app.ready.store(true, Ordering::SeqCst);
            eprintln!(
                "replay done; serving the API on http://{} (Ctrl-C to stop)",
                cfg.http.listen
            );
        }
        let _ = server.await;
    }
    if let Some(alerts) = alerts {
        let _ = alerts.await;
    }
    health.check()
}

pub struct ReplaySummary {
    pub lines: u64,
    pub counts: IngestCounts,
    pub elapsed: Duration,
    pub interrupted: bool,
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "replay {}: {} lines in {:.1}s ({:.0} events/s): accepted {}, duplicate {}, late {}, invalid {}",
            if self.interrupted { "interrupted" } else { "done" },
            self.lines,
            secs,
            self.lines as f64 / secs,
            self.counts.accepted,
            self.counts.duplicate,
            self.counts.late,
            self.counts.invalid
        )
    }
}

/// Bytes read per chunk of lines handed from the reading thread to the
/// applying one (a line longer than this makes a bigger chunk).
const CHUNK_BYTES: usize = 1 << 18;
/// Chunks decoded ahead of the applying thread: bounds the memory the reader
/// can run ahead by.
const DECODED_AHEAD: usize = 2;
/// Commits queued behind the one being written: none, the next one is
/// handed over when the writer is free. Applying runs while a commit syncs;
/// this bounds the memory of commits to the one being written and the one
/// being built, and the submitter waits when the disk is slower than that.
const COMMITS_QUEUED: usize = 0;
/// Accepted events after which a commit is made before the interval is
/// over: bounds the size of one commit (and the memory it takes on its way
/// to the disk) when the input is fast.
const COMMIT_MAX_EVENTS: usize = 1 << 16;

/// Applies every line of the file, committing the state once a second.
pub fn replay_file(
    opts: &ReplayOptions,
    engine: &RwLock<Engine>,
    store: &dyn Store,
    clock: &dyn Clock,
    shutdown: &CancellationToken,
) -> anyhow::Result<ReplaySummary> {
    replay_file_every(
        opts,
        engine,
        store,
        clock,
        shutdown,
        Duration::from_millis(Config::default().state.commit_interval.unsigned_abs()),
    )
}

/// Applies every line of the file, committing the state every
/// `commit_interval` and at the end. Three threads: one reads and decodes
/// chunks of lines, this one applies them (the engine has one writer), one
/// writes and syncs the commits. A crash loses at most what was applied
/// since the last durable commit; since the file is read again whole on the
/// next run and duplicates are recognised, the result is exact anyway.
pub fn replay_file_every(
    opts: &ReplayOptions,
    engine: &RwLock<Engine>,
    store: &dyn Store,
    clock: &dyn Clock,
    shutdown: &CancellationToken,
    commit_interval: Duration,
) -> anyhow::Result<ReplaySummary> {
    let file = std::fs::File::open(&opts.input)
        .with_context(|| format!("opening {}", opts.input.display()))?;
    let dead = match &opts.dead_letter {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let started = Instant::now();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<DecodedLines>(DECODED_AHEAD);
        let reader = std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn_scoped(s, move || read_chunks(file, &tx, shutdown))
            .context("starting the reader thread")?;
        let mut writer = Writer::spawn(s, store, COMMITS_QUEUED);
        let applied = apply_chunks(
            rx,
            engine,
            &mut writer,
            clock,
            dead,
            shutdown,
            commit_interval,
            started,
        );
        // Every commit submitted is written before anything is reported.
        let written = writer.finish();
        let read = match reader.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        written?;
        let (lines, counts) = applied?;
        let eof = read?;
        Ok(ReplaySummary {
            lines,
            counts,
            elapsed: started.elapsed(),
            interrupted: !eof || shutdown.is_cancelled(),
        })
    })
}

/// Reads `file` in chunks of whole lines, decodes each and sends it on.
/// Returns whether the end of the file was reached.
fn read_chunks(
    mut file: std::fs::File,
    tx: &std::sync::mpsc::SyncSender<DecodedLines>,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let mut carry: Vec<u8> = Vec::new();
    let mut next_line: u64 = 1;
    loop {
        if shutdown.is_cancelled() {
            return Ok(false);
        }
        let mut buf = Vec::with_capacity(carry.len() + CHUNK_BYTES);
        buf.append(&mut carry);
        let got = (&mut file)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut buf)
            .context("reading input")?;
        let eof = got < CHUNK_BYTES;
        if !eof {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(end) => carry.extend_from_slice(&buf[end + 1..]),
                None => {
                    // A line longer than a chunk: read on.
                    carry = buf;
                    continue;
                }
            }
            let keep = buf.len() - carry.len();
            buf.truncate(keep);
        }
        if !buf.is_empty() {
            let chunk = DecodedLines::decode(buf, next_line);
            next_line += chunk.len() as u64;
            if tx.send(chunk).is_err() {
                // The applying side stopped (an error or a shutdown).
                return Ok(false);
            }
        }
        if eof {
            return Ok(true);
        }
    }
}

/// Applies decoded chunks as they come, submitting a commit every
/// `commit_interval` and one at the end. Returns the lines seen and the
/// outcome counts.
#[allow(clippy::too_many_arguments)]
fn apply_chunks(
    rx: std::sync::mpsc::Receiver<DecodedLines>,
    engine: &RwLock<Engine>,
    writer: &mut Writer<'_>,
    clock: &dyn Clock,
    mut dead: Option<std::io::BufWriter<std::fs::File>>,
    shutdown: &CancellationToken,
    commit_interval: Duration,
    started: Instant,
) -> anyhow::Result<(u64, IngestCounts)> {
    let mut counts = IngestCounts::default();
    let mut lines: u64 = 0;
    let mut last_commit = Instant::now();
    let mut last_progress: Option<Instant> = None;
    for mut chunk in rx {
        if shutdown.is_cancelled() {
            break;
        }
        let now = clock.now();
        let full = {
            let mut e = engine.write().unwrap_or_else(|e| e.into_inner());
            for (n, raw, decoded) in chunk.drain() {
                lines = n;
                let Some(decoded) = decoded else { continue };
                let p = process_decoded(&mut e, raw, decoded, now);
                counts.record(&p.result);
                if let (Some(w), Some(reason)) = (dead.as_mut(), p.dead_letter) {
                    let rec = serde_json::json!({
                        "error": reason,
                        "line": n,
                        "raw": String::from_utf8_lossy(raw),
                    });
                    writeln!(w, "{rec}").context("writing dead letters")?;
                }
            }
            e.unsaved_ids() >= COMMIT_MAX_EVENTS
        };
        // The first commit follows the first chunk, and the first progress
        // line follows that commit's acknowledgement: once it is printed,
        // some state is durable.
        let first = last_progress.is_none();
        if first || full || last_commit.elapsed() >= commit_interval {
            last_commit = Instant::now();
            let (acked_tx, acked_rx) = std::sync::mpsc::channel::<()>();
            if !submit_state(engine, writer, first.then_some(acked_tx)) {
                break;
            }
            if first && acked_rx.recv().is_err() {
                // The writer dropped the acknowledgement: it failed, and
                // `finish` says why.
                break;
            }
        }
        if last_progress.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_progress = Some(Instant::now());
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprintln!(
                "replay: {} lines, {:.0} events/s, invalid {}, duplicate {}, late {}",
                lines,
                lines as f64 / secs,
                counts.invalid,
                counts.duplicate,
                counts.late
            );
        }
    }
    submit_state(engine, writer, None);
    if let Some(mut w) = dead {
        w.flush().context("writing dead letters")?;
    }
    Ok((lines, counts))
}

/// Encodes what changed in the engine and queues it for the writer; `ack`
/// hears once it is durable. False when the writer has stopped.
fn submit_state(
    engine: &RwLock<Engine>,
    writer: &mut Writer<'_>,
    ack: Option<std::sync::mpsc::Sender<()>>,
) -> bool {
    let batch = {
        let mut e = engine.write().unwrap_or_else(|e| e.into_inner());
        e.maybe_compact();
        state::dirty_batch(&mut e)
    };
    let on_durable: Option<OnDurable> = ack.map(|tx| {
        Box::new(move || {
            let _ = tx.send(());
        }) as OnDurable
    });
    writer.submit(Commit { batch, on_durable }).is_ok()
}

/// Where `check-config` and the other commands look by default.
pub fn default_config_path() -> &'static Path {
    Path::new("config/slastream.toml")
}
