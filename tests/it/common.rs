//! Shared helpers: configs, sample events, replay into a state directory with
//! a fixed clock, and queries through the router.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use slastream::api::{self, AppState};
use slastream::app::{replay_file, ReplayOptions};
use slastream::config::{self, Config};
use slastream::engine::Engine;
use slastream::generate::{GenSettings, Generator};
use slastream::model::time::{parse_rfc3339, Clock, ManualClock, Millis, DAY};
use slastream::store::{state, MemStore, RocksStore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn t(s: &str) -> Millis {
    parse_rfc3339(s).expect("test timestamp")
}

/// The shipped example configuration, with the state directory moved.
pub fn shipped_config(state_dir: &Path) -> Config {
    let mut cfg =
        config::load(&root().join("config/slastream.toml")).expect("shipped config is valid");
    cfg.state.path = state_dir.to_path_buf();
    cfg
}

/// The instant all golden answers are computed at.
pub fn golden_now() -> Millis {
    t("2026-11-20T00:00:00Z")
}

/// A deterministic workload for the shipped config: 14 days of November 2026.
pub fn sample_lines(cfg: &Config, rate: f64, days: i64, seed: u64) -> Vec<String> {
    let settings =
        GenSettings::from_config(cfg, seed, 0, rate, t("2026-11-01T00:00:00Z"), days * DAY);
    Generator::new(settings).map(|e| e.json).collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write events");
}

/// Replays `input` into the state at `cfg.state.path`, then returns the
/// restored engine (so what is answered is what was persisted).
pub fn replay_into(cfg: &Config, input: &Path) -> Engine {
    let store: Arc<dyn slastream::store::Store> =
        Arc::new(RocksStore::open(&cfg.state.path).expect("open state"));
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
    drop(engine);
    drop(store);
    restore(cfg)
}

/// The engine `slastream` restores from the state at `cfg.state.path`
/// (history behind the hot window read from there: the store stays open
/// while the engine lives).
pub fn restore(cfg: &Config) -> Engine {
    let store: Arc<dyn slastream::store::Store> =
        Arc::new(RocksStore::open(&cfg.state.path).expect("open state"));
    state::restore_shared(cfg, store).expect("restore")
}

pub fn app(engine: Engine, now: Millis, token: &str) -> axum::Router {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
    let st = AppState::with_state(
        Arc::new(RwLock::new(engine)),
        Arc::new(MemStore::default()),
        clock,
        token.to_string(),
        Arc::new(|e: &Engine, now| {
            slastream::export::render(e, now, &slastream::export::ExportOptions::default())
        }),
    );
    st.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    api::router(st)
}

pub async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn get(app: &axum::Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let (status, body) = call(app, Request::get(uri).body(Body::empty()).expect("request")).await;
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, json)
}

/// Every answer the golden and restart tests compare: compliance for each
/// SLO in customer, segment, timezone and all scopes, month and from/to
/// windows; breaches; the report as JSON and CSV.
pub async fn answers(app: &axum::Router, cfg: &Config) -> Vec<(String, String)> {
    let mut uris = Vec::new();
    for slo in &cfg.slos {
        let s = &slo.name;
        for c in &cfg.customers {
            uris.push(format!(
                "/api/v1/compliance?slo={s}&customer={}&month=2026-11",
                c.id
            ));
        }
        uris.push(format!("/api/v1/compliance?slo={s}&month=2026-11"));
        uris.push(format!(
            "/api/v1/compliance?slo={s}&from=2026-11-03T00:00:00Z&to=2026-11-10T12:30:00Z"
        ));
        let mut segments: Vec<&str> = cfg.customers.iter().map(|c| c.segment.as_str()).collect();
        segments.sort();
        segments.dedup();
        for g in segments {
            uris.push(format!(
                "/api/v1/compliance?slo={s}&segment={g}&month=2026-11&tz=Europe/Berlin"
            ));
        }
        uris.push(format!(
            "/api/v1/compliance?slo={s}&timezone=Asia/Kolkata&month=2026-11"
        ));
        uris.push(format!("/api/v1/breaches?slo={s}"));
    }
    uris.push("/api/v1/report?month=2026-11".to_string());
    uris.push("/api/v1/report?month=2026-11&format=csv".to_string());
    let mut out = Vec::new();
    for uri in uris {
        let (status, body) = call(
            app,
            Request::get(&uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        out.push((uri, without_as_of(body)));
    }
    out
}

/// The answer without its `as_of` (compared by tests of their own), so
/// answers of different runs over the same events compare equal.
fn without_as_of(body: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut o)) => {
            o.remove("as_of");
            serde_json::Value::Object(o).to_string()
        }
        _ => body,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 200 ms until it holds; fails the test after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: std::time::Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A real Prometheus on loopback scraping `target` every second.
pub struct Prometheus {
    _process: Killed,
    pub url: String,
    pub config: PathBuf,
}

impl Prometheus {
    pub fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: slastream\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let process = Killed(
            std::process::Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("prometheus (scripts/test.sh installs it)"),
        );
        Prometheus {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
            config,
        }
    }

    /// The result vector of an instant query (empty when it fails).
    pub async fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let Ok(url) =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.url), &[("query", q)])
        else {
            return Vec::new();
        };
        let Ok(r) = reqwest::get(url).await else {
            return Vec::new();
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}
