//! The alert loop of a running process. One task evaluates the rules (every
//! `EVAL_EVERY` of wall time and after every ingested batch) and persists the
//! book; each delivery target has its own task that sends what the book says
//! it is owed, with retries, exponential backoff and jitter. The book is the
//! only queue: a change is persisted under the book's lock before any target
//! can see it, and a target wakes on a `Notify` when something changed. So
//! evaluation never waits on delivery, and a hanging, slow or failing target
//! delays neither the others nor the next evaluation.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{api_base, evaluate, targets, Book, CaughtUp, Episode, Revision};
use crate::config::Config;
use crate::engine::Engine;
use crate::export::PipelineMetrics;
use crate::ingest::produce::AlertSink;
use crate::model::time::{format_rfc3339, Clock};
use crate::store::{state, Batch, Store, StoreError};

/// Evaluation period in wall time (SPEC asks for at least every 15 s).
pub const EVAL_EVERY: Duration = Duration::from_secs(5);
/// Per HTTP request (one Alertmanager batch, one webhook notification).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Alerts per Alertmanager request, so that one huge set neither exceeds the
/// request timeout nor fails as a whole for one rejected item.
pub const ALERTMANAGER_BATCH: usize = 500;
/// Notifications in flight per webhook.
const WEBHOOK_CONCURRENCY: usize = 8;
/// Messages in flight to the alerts topic (librdkafka queues them).
const KAFKA_CONCURRENCY: usize = 256;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Attempts after which a notification is given up (counted `failed`).
const MAX_ATTEMPTS: u32 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("persisting the alert state: {0}")]
    Store(#[from] StoreError),
    #[error("creating the HTTP client for alert delivery: {0}")]
    Http(#[from] reqwest::Error),
    #[error("alert delivery task for {target}: {source}")]
    Task {
        target: String,
        source: tokio::task::JoinError,
    },
}

/// What the evaluation loop and the delivery tasks share.
struct Shared {
    book: Mutex<Book>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<PipelineMetrics>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the episodes `fps` as `book` holds them and deletes `gone`.
    /// Called with the book locked, so no target sees a change before it is
    /// durable.
    fn persist(
        &self,
        book: &Book,
        fps: &BTreeSet<String>,
        gone: &[String],
    ) -> Result<(), StoreError> {
        if fps.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let mut b = Batch::default();
        for fp in fps {
            state::put_alert(&mut b, fp, book.episodes.get(fp));
        }
        for fp in gone {
            state::put_alert::<Episode>(&mut b, fp, None);
        }
        self.store.write(b)
    }

    fn count(&self, kind: &str, result: &str) {
        if let Some(m) = &self.metrics {
            m.deliveries.with_label_values(&[kind, result]).inc();
        }
    }
}

pub struct Alerter {
    cfg: Config,
    api: String,
    engine: Arc<RwLock<Engine>>,
    caught_up: CaughtUp,
    shared: Arc<Shared>,
    /// Every target (`kind:address`) and what wakes its delivery task.
    targets: Vec<(String, Arc<Notify>)>,
    /// The delivery tasks' state until `run` starts them.
    deliverers: Vec<Deliverer>,
}

/// The JSON of a webhook notification and of an alerts-topic message.
pub fn notification(fp: &str, e: &Episode) -> serde_json::Value {
    json!({
        "status": e.status(),
        "labels": e.labels,
        "annotations": e.annotations,
        "startsAt": format_rfc3339(e.starts_at),
        "endsAt": e.ends_at.map(format_rfc3339),
        "fingerprint": fp,
    })
}

fn alertmanager_item(e: &Episode) -> serde_json::Value {
    let mut v = json!({
        "labels": e.labels,
        "annotations": e.annotations,
        "startsAt": format_rfc3339(e.starts_at),
        "generatorURL": e.annotations.get("api").cloned().unwrap_or_default(),
    });
    if let Some(end) = e.ends_at {
        v["endsAt"] = json!(format_rfc3339(end));
    }
    v
}

impl Alerter {
    /// Loads the alert state from `store`. `kafka`: publish to the alerts
    /// topic too (when `alerting.kafka`). `caught_up`: whether the engine
    /// holds every event up to now (see `CaughtUp`); read before each
    /// evaluation.
    pub fn open(
        cfg: &Config,
        engine: Arc<RwLock<Engine>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Option<Arc<PipelineMetrics>>,
        kafka: bool,
        caught_up: CaughtUp,
    ) -> anyhow::Result<Alerter> {
        let kafka = if kafka && cfg.alerting.kafka {
            Some(AlertSink::new(&cfg.kafka)?)
        } else {
            None
        };
        let targets = targets(
            &cfg.alerting,
            kafka.as_ref().map(|_| cfg.kafka.topics.alerts.as_str()),
        );
        let mut book = Book::default();
        for (fp, e) in state::alerts::<Episode>(store.as_ref())? {
            book.episodes.insert(fp, e);
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(AlertError::Http)?;
        let shared = Arc::new(Shared {
            book: Mutex::new(book),
            store,
            clock,
            metrics,
        });
        let deliverers: Vec<Deliverer> = targets
            .into_iter()
            .map(|target| Deliverer {
                target,
                shared: shared.clone(),
                http: http.clone(),
                kafka: kafka.clone(),
                wake: Arc::new(Notify::new()),
                backoff: HashMap::new(),
            })
            .collect();
        Ok(Alerter {
            api: api_base(&cfg.http),
            cfg: cfg.clone(),
            engine,
            caught_up,
            shared,
            targets: deliverers
                .iter()
                .map(|d| (d.target.clone(), d.wake.clone()))
                .collect(),
            deliverers,
        })
    }

    /// A copy of the alert book.
    pub fn book(&self) -> Book {
        self.shared.lock().clone()
    }

    /// Evaluates the rules at the clock's now, persists what changed and
    /// wakes the targets that are owed something new.
    pub fn evaluate(&self) -> Result<(), AlertError> {
        let now = self.shared.clock.now();
        // Read before the engine: a flag set after this read only delays
        // the change to the next evaluation.
        let caught_up = self.caught_up.load(Ordering::SeqCst);
        let firing = {
            let e = self.engine.read().unwrap_or_else(|p| p.into_inner());
            evaluate(&e, now, &self.cfg.alerting, &self.api)
        };
        let targets: Vec<String> = self.targets.iter().map(|(t, _)| t.clone()).collect();
        let changed = {
            let mut book = self.shared.lock();
            let changed = book.update(
                firing,
                now,
                &targets,
                self.cfg.alerting.resend_interval,
                caught_up,
            );
            self.shared.persist(&book, &changed, &[])?;
            if let Some(m) = &self.shared.metrics {
                m.alerts_firing.reset();
                for ((name, sev), n) in book.firing_counts() {
                    m.alerts_firing.with_label_values(&[&name, &sev]).set(n);
                }
            }
            changed
        };
        if !changed.is_empty() {
            for (_, wake) in &self.targets {
                wake.notify_one();
            }
        }
        Ok(())
    }

    /// One attempt at everything every target is owed, all targets at once;
    /// returns when each has answered or timed out. For a process that
    /// evaluates once and exits (`replay` without `--then-serve`).
    pub async fn deliver_once(&mut self) -> Result<(), AlertError> {
        let mut jobs = JoinSet::new();
        let mut names = HashMap::new();
        for mut d in std::mem::take(&mut self.deliverers) {
            let target = d.target.clone();
            let job = jobs.spawn(async move {
                let r = d.round().await;
                (d, r)
            });
            names.insert(job.id(), target);
        }
        let mut result = Ok(());
        while let Some(done) = jobs.join_next_with_id().await {
            let r = match done {
                Ok((_, (d, r))) => {
                    self.deliverers.push(d);
                    r
                }
                Err(e) => Err(AlertError::Task {
                    target: names.remove(&e.id()).unwrap_or_default(),
                    source: e,
                }),
            };
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Evaluates until `shutdown`, while every target delivers on its own
    /// task; `wake` asks for an evaluation now (after an ingested batch).
    /// Fails when the book cannot be persisted or a delivery task dies.
    pub async fn run(
        mut self,
        shutdown: CancellationToken,
        wake: Arc<Notify>,
    ) -> anyhow::Result<()> {
        let mut tasks: JoinSet<Result<(), AlertError>> = JoinSet::new();
        let mut names = HashMap::new();
        for d in std::mem::take(&mut self.deliverers) {
            let target = d.target.clone();
            let job = tasks.spawn(d.run(shutdown.clone()));
            names.insert(job.id(), target);
        }
        let mut tick = tokio::time::interval(EVAL_EVERY);
        let result = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = tick.tick() => {}
                _ = wake.notified() => {}
                Some(done) = tasks.join_next_with_id() => {
                    // A delivery task ends early only when it failed.
                    match done {
                        Ok((_, Ok(()))) => continue,
                        Ok((_, Err(e))) => break Err(e),
                        Err(e) => break Err(AlertError::Task {
                            target: names.remove(&e.id()).unwrap_or_default(),
                            source: e,
                        }),
                    }
                }
            }
            if let Err(e) = self.evaluate() {
                break Err(e);
            }
        };
        // Stopping mid-delivery is safe: what was not acknowledged is still
        // owed in the store and goes out after the restart.
        tasks.shutdown().await;
        Ok(result?)
    }
}

/// Exponential backoff with ±50% jitter.
fn backoff(attempts: u32) -> Duration {
    let base = BACKOFF_FIRST
        .saturating_mul(1u32 << attempts.min(16))
        .min(BACKOFF_MAX);
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// (fingerprint, revision sent, delivery result).
type Outcome = (String, Revision, Result<(), String>);

/// One delivery target (`kind:address`) and its retry state.
struct Deliverer {
    target: String,
    shared: Arc<Shared>,
    http: reqwest::Client,
    kafka: Option<AlertSink>,
    /// Notified when the book owes this target something new.
    wake: Arc<Notify>,
    /// Fingerprint → (failed attempts, not before).
    backoff: HashMap<String, (u32, Instant)>,
}

impl Deliverer {
    fn kind(&self) -> &str {
        self.target.split(':').next().unwrap_or("")
    }

    /// Rounds until `shutdown`: after each, waits for something new or for
    /// the first retry to come due.
    async fn run(mut self, shutdown: CancellationToken) -> Result<(), AlertError> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                r = self.round() => r?,
            }
            let retry = self.backoff.values().map(|(_, at)| *at).min();
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = async {
                    match retry {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
    }

    /// Sends everything owed that is not waiting for a retry; records the
    /// outcomes in the book.
    async fn round(&mut self) -> Result<(), AlertError> {
        let now = Instant::now();
        let owed: Vec<(String, Episode)> = {
            let book = self.shared.lock();
            let target = &self.target;
            // What is no longer owed (delivered, given up, pruned) needs no
            // retry state.
            self.backoff.retain(|fp, _| {
                book.episodes
                    .get(fp)
                    .is_some_and(|e| e.pending.contains(target))
            });
            book.episodes
                .iter()
                .filter(|(_, e)| e.pending.contains(target))
                .filter(|(fp, _)| {
                    self.backoff
                        .get(fp.as_str())
                        .is_none_or(|(_, at)| *at <= now)
                })
                .map(|(fp, e)| (fp.clone(), e.clone()))
                .collect()
        };
        if owed.is_empty() {
            return Ok(());
        }
        let outcomes = send(&self.target, owed, &self.http, self.kafka.as_ref()).await;
        self.record(outcomes)
    }

    fn record(&mut self, outcomes: Vec<Outcome>) -> Result<(), AlertError> {
        let kind = self.kind().to_string();
        let mut book = self.shared.lock();
        let now = self.shared.clock.now();
        let mut changed = BTreeSet::new();
        for (fp, revision, r) in outcomes {
            match r {
                Ok(()) => {
                    self.backoff.remove(&fp);
                    if book.delivered(&fp, &self.target, revision, now) {
                        changed.insert(fp);
                    }
                    self.shared.count(&kind, "ok");
                }
                Err(why) => {
                    let attempts = self.backoff.get(&fp).map_or(0, |(n, _)| *n) + 1;
                    if attempts >= MAX_ATTEMPTS {
                        tracing::error!(target = %self.target, fingerprint = %fp, error = %why, "alert notification given up");
                        self.backoff.remove(&fp);
                        if let Some(e) = book.episodes.get_mut(&fp) {
                            if e.revision() == revision && e.pending.remove(&self.target) {
                                changed.insert(fp);
                            }
                        }
                        self.shared.count(&kind, "failed");
                    } else {
                        tracing::warn!(target = %self.target, fingerprint = %fp, attempts, error = %why, "alert notification failed; retrying");
                        self.backoff
                            .insert(fp, (attempts, Instant::now() + backoff(attempts)));
                        self.shared.count(&kind, "retry");
                    }
                }
            }
        }
        let gone = book.prune();
        self.shared.persist(&book, &changed, &gone)?;
        Ok(())
    }
}

fn http_result(r: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    match r {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("HTTP {}", resp.status())),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends `owed` to one target: Alertmanager in batches of
/// `ALERTMANAGER_BATCH`, webhooks and the alerts topic one notification per
/// episode, several in flight.
async fn send(
    target: &str,
    owed: Vec<(String, Episode)>,
    http: &reqwest::Client,
    kafka: Option<&AlertSink>,
) -> Vec<Outcome> {
    let (kind, address) = target.split_once(':').unwrap_or((target, ""));
    let mut out = Vec::with_capacity(owed.len());
    match kind {
        "alertmanager" => {
            let url = format!("{address}/api/v2/alerts");
            for chunk in owed.chunks(ALERTMANAGER_BATCH) {
                let body: Vec<serde_json::Value> =
                    chunk.iter().map(|(_, e)| alertmanager_item(e)).collect();
                let r = http_result(http.post(&url).json(&body).send().await);
                out.extend(
                    chunk
                        .iter()
                        .map(|(fp, e)| (fp.clone(), e.revision(), r.clone())),
                );
            }
        }
        "webhook" => {
            let address = address.to_string();
            out = in_flight(owed, WEBHOOK_CONCURRENCY, move |fp, e| {
                let req = http.post(&address).json(&notification(&fp, &e));
                async move { http_result(req.send().await) }
            })
            .await;
        }
        "kafka" => {
            out = in_flight(owed, KAFKA_CONCURRENCY, move |fp, e| {
                let sink = kafka.cloned();
                async move {
                    match sink {
                        Some(k) => k.publish(&fp, &notification(&fp, &e).to_string()).await,
                        None => Err("no Kafka producer".to_string()),
                    }
                }
            })
            .await;
        }
        _ => {}
    }
    out
}

/// Runs `f` for every owed episode with at most `limit` in flight.
async fn in_flight<F, Fut>(owed: Vec<(String, Episode)>, limit: usize, mut f: F) -> Vec<Outcome>
where
    F: FnMut(String, Episode) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut out = Vec::with_capacity(owed.len());
    let mut jobs: JoinSet<Outcome> = JoinSet::new();
    for (fp, e) in owed {
        while jobs.len() >= limit {
            if let Some(Ok(o)) = jobs.join_next().await {
                out.push(o);
            }
        }
        let revision = e.revision();
        let fut = f(fp.clone(), e);
        jobs.spawn(async move { (fp, revision, fut.await) });
    }
    while let Some(done) = jobs.join_next().await {
        if let Ok(o) = done {
            out.push(o);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Delivery against local HTTP endpoints: Alertmanager batches are
    //! bounded; a target that never answers holds up neither another target
    //! nor evaluation.

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex, RwLock};
    use std::time::Duration;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Json, Router};
    use tokio::sync::Notify;
    use tokio_util::sync::CancellationToken;

    use super::{Alerter, Episode, ALERTMANAGER_BATCH};
    use crate::config;
    use crate::engine::Engine;
    use crate::model::event::decode;
    use crate::model::time::{parse_rfc3339, ManualClock, MINUTE};
    use crate::store::{state, Batch, MemStore, Store};

    type Seen = Arc<Mutex<Vec<serde_json::Value>>>;

    async fn record(State(seen): State<Seen>, Json(v): Json<serde_json::Value>) -> StatusCode {
        seen.lock().expect("lock").push(v);
        StatusCode::OK
    }

    /// An HTTP endpoint that accepts every POST and keeps its body.
    async fn recorder() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state(seen.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }

    /// A TCP endpoint that accepts connections and never answers.
    fn black_hole() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming() {
                held.push(s);
            }
        });
        format!("http://{addr}/hook")
    }

    fn cfg(alerting: &str) -> config::Config {
        let text = format!(
            "[alerting]\n{alerting}\n\n[[slos]]\nname = \"response\"\nindicator = \"ticket_response\"\nobjective = 0.9\nwindow = \"month\"\nclock = \"24x7\"\ntargets = {{ P1 = \"1h\", P2 = \"4h\", P3 = \"8h\", P4 = \"16h\" }}\n"
        );
        config::parse(&text, &[], Path::new(".")).expect("valid")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn alertmanager_is_sent_bounded_batches() {
        let (am, seen) = recorder().await;
        let cfg = cfg(&format!("alertmanager_urls = [\"{am}\"]"));
        let target = format!("alertmanager:{am}");
        let store = MemStore::default();
        let mut b = Batch::default();
        let n = 2 * ALERTMANAGER_BATCH + 1;
        for i in 0..n {
            let e = Episode {
                labels: BTreeMap::from([("alertname".into(), format!("A{i}"))]),
                annotations: BTreeMap::new(),
                starts_at: 0,
                ends_at: None,
                pending: [target.clone()].into(),
                sent_at: BTreeMap::new(),
            };
            state::put_alert(&mut b, &format!("{i:016x}"), Some(&e));
        }
        store.write(b).expect("write");
        let mut alerter = Alerter::open(
            &cfg,
            Arc::new(RwLock::new(Engine::new(&cfg))),
            Arc::new(store.clone()),
            Arc::new(ManualClock::new(MINUTE)),
            None,
            false,
            Arc::new(AtomicBool::new(true)),
        )
        .expect("alerter");
        alerter.deliver_once().await.expect("delivered");
        let sizes: Vec<usize> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|v| v.as_array().map_or(0, Vec::len))
            .collect();
        assert_eq!(sizes, vec![ALERTMANAGER_BATCH, ALERTMANAGER_BATCH, 1]);
        // Acknowledged, and so persisted.
        let stored = state::alerts::<Episode>(&store).expect("stored");
        assert_eq!(stored.len(), n);
        assert!(stored.iter().all(|(_, e)| e.pending.is_empty()));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_hanging_target_holds_up_neither_another_nor_evaluation() {
        let (hook, seen) = recorder().await;
        let hooks = [black_hole(), black_hole(), format!("{hook}/hook")];
        let cfg = cfg(&format!(
            "webhook_urls = [{}]",
            hooks.map(|h| format!("\"{h}\"")).join(", ")
        ));
        let now = parse_rfc3339("2026-11-16T12:00:00Z").expect("now");
        let clock = Arc::new(ManualClock::new(now));
        let engine = Arc::new(RwLock::new(Engine::new(&cfg)));
        let open = |id: &str, at: &str| {
            let ev = format!(
                r#"{{"event_id":"{id}","kind":"ticket","occurred_at":"{at}","customer_id":"c","ticket_id":"{id}","action":"opened","priority":"P1"}}"#
            );
            let mut e = engine.write().expect("engine");
            e.apply(&decode(ev.as_bytes()).expect("event"), now);
        };
        // Forty breached tickets: one round to a black hole takes several
        // request timeouts.
        for i in 0..40 {
            open(&format!("old-{i}"), "2026-11-16T09:00:00Z");
        }
        let alerter = Alerter::open(
            &cfg,
            engine.clone(),
            Arc::new(MemStore::default()),
            clock.clone(),
            None,
            false,
            Arc::new(AtomicBool::new(true)),
        )
        .expect("alerter");
        let shutdown = CancellationToken::new();
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(alerter.run(shutdown.clone(), wake.clone()));
        let delivered = |id: &'static str| {
            let seen = seen.clone();
            async move {
                for _ in 0..100 {
                    if seen.lock().expect("lock").iter().any(|v| {
                        v["labels"]["ticket_id"] == id
                            && v["labels"]["alertname"] == "TicketSLABreached"
                    }) {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                false
            }
        };
        assert!(
            delivered("old-0").await,
            "the answering webhook got nothing"
        );
        // A breach that comes due while the black holes hold every request:
        // evaluated at once (the wake) and delivered within the 2 s above.
        open("new", "2026-11-16T11:00:30Z");
        clock.set(now + MINUTE);
        wake.notify_one();
        assert!(
            delivered("new").await,
            "a new breach waited for a black hole"
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops on shutdown")
            .expect("task")
            .expect("no error");
    }
}
