//! `slastream demo`: the product on one machine with nothing installed. An
//! embedded Kafka-protocol broker (librdkafka's mock cluster) holds the
//! topics; a simulated clock (`--speed N` times the wall clock) drives the
//! generator, which publishes three days of history at start, then events as
//! the simulated clock passes them; the same consumer as `slastream run`
//! applies them to the engine, store and API. The second half of the workload burns the first probe service,
//! so an SLO visibly burns from the moment the demo is live.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::app::{load_state, open_store, spawn_ingest, spawn_server, IngestParts};
use crate::config::Config;
use crate::export::{ExportOptions, PipelineMetrics};
use crate::generate::{GenSettings, Generator};
use crate::health::Health;
use crate::ingest::produce::EventProducer;
use crate::ingest::{EmbeddedBroker, KafkaLag};
use crate::model::time::{floor_minute, Clock, Millis, WallClock, DAY};

/// History applied at once when the demo starts.
const HISTORY: Millis = 3 * DAY;

/// Simulated time: `origin` at the wall-clock instant `started`, then `speed`
/// times faster.
pub struct SimClock {
    origin: Millis,
    started: Instant,
    speed: f64,
    frozen: AtomicI64,
    frozen_on: AtomicBool,
}

impl SimClock {
    pub fn new(origin: Millis, speed: f64) -> SimClock {
        SimClock {
            origin,
            started: Instant::now(),
            speed,
            frozen: AtomicI64::new(0),
            frozen_on: AtomicBool::new(false),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Millis {
        if self.frozen_on.load(Ordering::SeqCst) {
            return self.frozen.load(Ordering::SeqCst);
        }
        self.origin + (self.started.elapsed().as_secs_f64() * 1000.0 * self.speed) as Millis
    }
}

pub async fn run(mut cfg: Config, speed: f64, shutdown: CancellationToken) -> anyhow::Result<()> {
    if !(speed > 0.0 && speed.is_finite()) {
        anyhow::bail!("--speed must be a positive number, got {speed}");
    }
    let state_dir = tempfile::Builder::new()
        .prefix("slastream-demo-")
        .tempdir()
        .context("creating a state directory")?;
    cfg.state.path = state_dir.path().to_path_buf();
    let broker = EmbeddedBroker::start(&cfg.kafka.topics, 3)?;
    cfg.kafka.brokers = broker.bootstrap_servers();
    cfg.kafka.properties.clear();
    let live_from = floor_minute(WallClock.now());
    let clock = Arc::new(SimClock::new(live_from, speed));
    let ready = Arc::new(AtomicBool::new(false));
    let pipeline = Arc::new(PipelineMetrics::new());
    let lag = Arc::new(KafkaLag::default());
    let health = Arc::new(Health::new(shutdown.clone()));
    let metrics = {
        let opts = ExportOptions {
            pipeline: Some(pipeline.clone()),
            lag: Some(lag.clone()),
            ..ExportOptions::from_config(&cfg)
        };
        Arc::new(move |e: &crate::engine::Engine, now| crate::export::render(e, now, &opts))
    };
    // Ready once the history is applied, not merely assigned.
    let app = AppState::loading(
        clock.clone(),
        crate::api::ApiOptions::from_config(&cfg),
        metrics,
        health.clone(),
    );
    let api_ready = app.ready.clone();
    let server = spawn_server(&cfg, app.clone(), &health, &shutdown).await?;
    let (engine, store) = load_state(&cfg, Box::new(open_store)).await?;
    app.set_loaded(engine.clone(), store.clone());
    // The same consumer and alert loop as `slastream run`, on the simulated
    // clock; the alerts topic is the embedded broker's.
    let tasks = spawn_ingest(
        &cfg,
        IngestParts {
            engine: engine.clone(),
            store,
            clock: clock.clone(),
            ready: ready.clone(),
            lag,
            pipeline,
            health: health.clone(),
        },
        &shutdown,
    )?;
    // Probes dominate: about one probe per customer and service a minute.
    let services = cfg
        .slos
        .iter()
        .filter(|s| s.indicator.is_probe())
        .count()
        .max(1) as f64;
    let rate = (cfg.customers.len().max(12) as f64 * services / 60.0).max(0.5);
    let settings = GenSettings::from_config(&cfg, 42, 12, rate, live_from - HISTORY, 2 * HISTORY);
    let mut events = Generator::new(settings).peekable();
    let mut producer = EventProducer::new(&cfg.kafka)?;
    let base = format!("http://{}", cfg.http.listen);
    let mut history: Option<u64> = None;
    let mut sent: u64 = 0;
    let mut announced = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = clock.now();
        let mut n = 0;
        while let Some(e) = events.peek() {
            if e.at > now || n >= 50_000 {
                break;
            }
            if let Some(e) = events.next() {
                let topic = producer.topic_for(e.kind).to_string();
                producer.send(&topic, Some(e.key.as_bytes()), e.json.as_bytes())?;
                n += 1;
            }
        }
        sent += n;
        if history.is_none() && events.peek().is_none_or(|e| e.at > live_from) {
            history = Some(sent);
        }
        let applied: u64 = {
            let e = engine.read().unwrap_or_else(|p| p.into_inner());
            e.counts
                .values()
                .map(|c| c.accepted + c.duplicate + c.late + c.invalid)
                .sum()
        };
        if !announced && ready.load(Ordering::SeqCst) && history.is_some_and(|h| applied >= h) {
            announced = true;
            api_ready.store(true, Ordering::SeqCst);
            let slo = cfg
                .slos
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_else(|| "api-availability".into());
            let customer = cfg
                .customers
                .first()
                .map(|c| c.id.clone())
                .unwrap_or_else(|| "acme".into());
            eprintln!(
                "\nslastream demo is live: open the web UI at {base}/\n\
                 (simulated clock at {speed}x, embedded Kafka broker at {brokers})\n\
                 Also:\n  {base}/api/v1/slos\n  {base}/metrics\n\
                 Try:\n  curl -s '{base}/api/v1/compliance?slo={slo}&customer={customer}'\n  \
                 curl -s '{base}/api/v1/breaches'\n  \
                 curl -s '{base}/api/v1/report?month={month}&format=csv'\n\
                 Ctrl-C stops the demo.\n",
                brokers = cfg.kafka.brokers,
                month = jiff::Timestamp::from_millisecond(now)
                    .map(|t| t.strftime("%Y-%m").to_string())
                    .unwrap_or_default()
            );
        }
        if events.peek().is_none() {
            // The workload is over; keep serving until stopped.
            clock.frozen.store(clock.now(), Ordering::SeqCst);
            clock.frozen_on.store(true, Ordering::SeqCst);
            shutdown.cancelled().await;
            break;
        }
    }
    drop(producer);
    tasks.join().await;
    let _ = server.await;
    drop(broker);
    health.check()
}
