//! The process as an operator sees it: `/healthz` from the first instant,
//! reads off the async workers, mutations durable before their answer,
//! shutdown within 10 s whatever clients hold (SPEC §3 Liveness, §4, §7).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use slastream::api::{self, AppState};
use slastream::engine::Engine;
use slastream::health::Health;
use slastream::model::time::{Clock, ManualClock};
use slastream::store::MemStore;
use tokio_util::sync::CancellationToken;

use crate::common::*;

const TOKEN: &str = "t0ken";

/// `slastream replay --input INPUT --then-serve` on the shipped config.
fn serve_replay(state: &Path, input: &Path, http: u16) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_slastream"))
            .args(["replay", "--config"])
            .arg(root().join("config/slastream.toml"))
            .arg("--input")
            .arg(input)
            .arg("--then-serve")
            .env("SLASTREAM__STATE__PATH", state)
            .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("SLASTREAM__HTTP__ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn slastream"),
    )
}

async fn status_of(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

async fn wait_ready(http: u16) {
    let url = format!("http://127.0.0.1:{http}/readyz");
    wait_until("readyz", Duration::from_secs(60), || {
        let url = url.clone();
        async move { status_of(&url).await == Some(200) }
    })
    .await;
}

#[tokio::test]
async fn healthz_answers_while_the_state_loads_and_reads_wait_for_it() {
    let token = CancellationToken::new();
    let health = Arc::new(Health::new(token.clone()));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(golden_now()));
    let st = AppState::loading(
        clock,
        String::new(),
        Arc::new(|_: &Engine, _| String::new()),
        health.clone(),
    );
    let app = api::router(st.clone());
    assert_eq!(get(&app, "/healthz").await.0, 200);
    assert_eq!(get(&app, "/readyz").await.0, 503);
    let (status, body) = get(&app, "/api/v1/compliance?slo=api-availability").await;
    assert_eq!(status, 503);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("loading")),
        "{body}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = shipped_config(dir.path());
    st.set_loaded(
        Arc::new(RwLock::new(Engine::new(&cfg))),
        Arc::new(MemStore::default()),
    );
    assert_eq!(
        get(&app, "/api/v1/compliance?slo=api-availability").await.0,
        200
    );
    // A failed part turns both probes red.
    st.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&app, "/readyz").await.0, 200);
    health.fail("consumer", "panicked");
    let (status, body) = get(&app, "/healthz").await;
    assert_eq!(status, 503);
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("consumer")));
    assert_eq!(get(&app, "/readyz").await.0, 503);
    assert!(token.is_cancelled());
}

#[tokio::test]
async fn every_answer_that_reads_state_carries_as_of() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = shipped_config(dir.path());
    let engine = replay_into(&cfg, &root().join("config/sample-events.ndjson"));
    let watermark = engine.watermark().expect("events applied");
    let app = app(engine, golden_now(), "");
    let want = serde_json::json!({
        "watermark": slastream::model::time::format_rfc3339(watermark),
        "now": "2026-11-20T00:00:00Z",
    });
    for uri in [
        "/api/v1/slos",
        "/api/v1/compliance?slo=api-availability&month=2026-11",
        "/api/v1/breaches",
        "/api/v1/report?month=2026-11",
        "/api/v1/exclusions",
        "/api/v1/audit",
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, 200, "{uri}");
        assert_eq!(body["as_of"], want, "{uri}");
    }
    let resp = tower::ServiceExt::oneshot(
        app,
        Request::get("/api/v1/report?month=2026-11&format=csv")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .expect("answer");
    assert_eq!(
        resp.headers()["x-slastream-now"].to_str().ok(),
        Some("2026-11-20T00:00:00Z")
    );
    assert_eq!(
        resp.headers()["x-slastream-watermark"].to_str().ok(),
        want["watermark"].as_str()
    );
}

#[tokio::test]
async fn sigterm_ends_the_process_within_10s_with_a_half_sent_request_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port();
    let mut child = serve_replay(&dir.path().join("state"), Path::new("/dev/null"), http);
    wait_ready(http).await;
    let mut half = std::net::TcpStream::connect(("127.0.0.1", http)).expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", http)).expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let pid = child.0.id().to_string();
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    drop(half);
    drop(idle);
}

async fn exclusions_and_audit(http: u16) -> (serde_json::Value, serde_json::Value) {
    let base = format!("http://127.0.0.1:{http}");
    let x: serde_json::Value = reqwest::get(format!("{base}/api/v1/exclusions"))
        .await
        .expect("exclusions")
        .json()
        .await
        .expect("json");
    let a: serde_json::Value = reqwest::get(format!("{base}/api/v1/audit"))
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    (x["exclusions"].clone(), a["entries"].clone())
}

#[tokio::test]
async fn an_exclusion_survives_kill_9_right_after_its_201() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let http = free_port();
    let sample = root().join("config/sample-events.ndjson");
    let child = serve_replay(&state, &sample, http);
    wait_ready(http).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("http://127.0.0.1:{http}/api/v1/exclusions"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "name": "maintenance", "from": "2026-11-03T00:00:00Z",
            "to": "2026-11-04T00:00:00Z", "author": "alice",
            "reason": "planned"
        }))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    // Killed the instant the answer arrived: nothing after it may be needed.
    drop(child);
    let (x_before, a_before) = {
        let http2 = free_port();
        let _again = serve_replay(&state, Path::new("/dev/null"), http2);
        wait_ready(http2).await;
        exclusions_and_audit(http2).await
    };
    assert_eq!(x_before.as_array().map(Vec::len), Some(1), "{x_before}");
    assert_eq!(x_before[0]["name"], "maintenance");
    assert_eq!(a_before.as_array().map(Vec::len), Some(1), "{a_before}");
    // `who` is the authenticated name (`http.admin_token`: "admin").
    assert_eq!(a_before[0]["who"], "admin");
    assert_eq!(x_before[0]["author"], "alice");

    // A withdrawal is durable the same way.
    let http3 = free_port();
    let child = serve_replay(&state, Path::new("/dev/null"), http3);
    wait_ready(http3).await;
    let id = x_before[0]["id"].as_u64().expect("id");
    let resp = client
        .delete(format!("http://127.0.0.1:{http3}/api/v1/exclusions/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status().as_u16(), 200);
    drop(child);
    let http4 = free_port();
    let _last = serve_replay(&state, Path::new("/dev/null"), http4);
    wait_ready(http4).await;
    let (x, a) = exclusions_and_audit(http4).await;
    assert_eq!(x.as_array().map(Vec::len), Some(0), "{x}");
    assert_eq!(a.as_array().map(Vec::len), Some(2), "{a}");
}

#[tokio::test]
async fn healthz_answers_at_once_while_a_large_state_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let cfg = shipped_config(&state);
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &sample_lines(&cfg, 0.2, 14, 3));
    std::fs::create_dir_all(&state).expect("state dir");
    drop(replay_into(&cfg, &input));
    let http = free_port();
    let started = Instant::now();
    let _child = serve_replay(&state, Path::new("/dev/null"), http);
    let healthz = format!("http://127.0.0.1:{http}/healthz");
    wait_until("healthz", Duration::from_secs(30), || {
        let url = healthz.clone();
        async move { status_of(&url).await == Some(200) }
    })
    .await;
    let to_health = started.elapsed();
    wait_ready(http).await;
    let to_ready = started.elapsed();
    eprintln!("restart: /healthz after {to_health:?}, /readyz after {to_ready:?}");
    assert!(to_health < Duration::from_secs(1), "{to_health:?}");
}

#[test]
fn a_read_does_not_hold_the_async_workers() {
    // A render that blocks for 3 s (a stand-in for a slow scrape): /healthz
    // keeps answering at once on a 1-worker runtime.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = shipped_config(dir.path());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let st = AppState::with_state(
        Arc::new(RwLock::new(Engine::new(&cfg))),
        Arc::new(MemStore::default()),
        Arc::new(ManualClock::new(golden_now())),
        String::new(),
        Arc::new(move |_: &Engine, _| {
            let _ = rx.lock().map(|r| r.recv_timeout(Duration::from_secs(3)));
            String::new()
        }),
    );
    let app = api::router(st);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let scrape = tokio::spawn({
            let app = app.clone();
            async move { get(&app, "/metrics").await.0 }
        });
        tokio::task::yield_now().await;
        let started = Instant::now();
        assert_eq!(get(&app, "/healthz").await.0, 200);
        assert!(started.elapsed() < Duration::from_millis(500));
        let _ = tx.send(());
        assert_eq!(scrape.await.expect("scrape"), 200);
    });
}
