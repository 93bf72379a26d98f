//! The HTTP API through the router: every error status, and a run-time
//! exclusion that changes a past month retroactively, with its audit entry.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;

use crate::common::*;

fn sample_engine(dir: &std::path::Path) -> (slastream::config::Config, slastream::engine::Engine) {
    let cfg = shipped_config(dir);
    let engine = replay_into(&cfg, &root().join("config/sample-events.ndjson"));
    (cfg, engine)
}

#[tokio::test]
async fn bad_parameters_name_the_parameter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, engine) = sample_engine(dir.path());
    let app = app(engine, golden_now(), "");
    let slo = &cfg.slos[0].name;
    let customer = &cfg.customers[0].id;
    let cases = [
        (format!("/api/v1/compliance?customer={customer}"), 400, "slo"),
        (format!("/api/v1/compliance?slo={slo}&from=2026-11-01T00:00:30Z&to=2026-11-02T00:00:00Z"), 400, "from"),
        (format!("/api/v1/compliance?slo={slo}&from=2026-11-01T00:00:00Z&to=yesterday"), 400, "to"),
        (format!("/api/v1/compliance?slo={slo}&from=2026-11-01T00:00:00Z"), 400, "to"),
        (format!("/api/v1/compliance?slo={slo}&month=2026-13"), 400, "month"),
        (format!("/api/v1/compliance?slo={slo}&month=2026-11&from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z"), 400, "month"),
        (format!("/api/v1/compliance?slo={slo}&month=2026-11&tz=Mars/Base"), 400, "tz"),
        (format!("/api/v1/compliance?slo={slo}&timezone=Nowhere/Land"), 400, "timezone"),
        (format!("/api/v1/compliance?slo={slo}&customer={customer}&segment=x"), 400, "segment"),
        (format!("/api/v1/compliance?slo={slo}&colour=blue"), 400, "colour"),
        ("/api/v1/compliance?slo=no-such-slo".to_string(), 404, "no-such-slo"),
        (format!("/api/v1/compliance?slo={slo}&customer=no-such-customer"), 404, "no-such-customer"),
        ("/api/v1/breaches?slo=no-such-slo".to_string(), 404, "no-such-slo"),
        ("/api/v1/breaches?from=soon".to_string(), 400, "from"),
        ("/api/v1/report".to_string(), 400, "month"),
        ("/api/v1/report?month=2026-11&format=xml".to_string(), 400, "format"),
    ];
    for (uri, status, needle) in cases {
        let (got, body) = get(&app, &uri).await;
        assert_eq!(got.as_u16(), status, "{uri}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{uri}: error {msg:?} should name {needle:?}"
        );
    }
    let (status, _) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&app, &format!("/api/v1/compliance?slo={slo}&month=2026-11")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["window"]["from"], "2026-11-01T00:00:00Z");
}

fn post(uri: &str, token: Option<&str>, body: String) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn mutations_need_the_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, engine) = sample_engine(dir.path());
    let body = json!({"name": "x", "from": "2026-11-02T00:00:00Z", "to": "2026-11-03T00:00:00Z", "author": "ops"}).to_string();
    let no_token = app(engine, golden_now(), "");
    let (status, _) = call(
        &no_token,
        post("/api/v1/exclusions", Some("anything"), body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let dir = tempfile::tempdir().expect("tempdir");
    let (_, engine) = sample_engine(dir.path());
    let app = app(engine, golden_now(), "s3cret");
    let (status, _) = call(&app, post("/api/v1/exclusions", None, body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &app,
        post("/api/v1/exclusions", Some("s3creT"), body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, _) = call(&app, post("/api/v1/exclusions", Some("s3cret"), big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let bad = json!({"name": "x", "from": "2026-11-02T00:00:10Z", "to": "2026-11-03T00:00:00Z", "author": "ops"}).to_string();
    let (status, text) = call(&app, post("/api/v1/exclusions", Some("s3cret"), bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("from"), "{text}");
    let (status, _) = call(
        &app,
        Request::delete("/api/v1/exclusions/999")
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn runtime_exclusion_changes_a_past_month_and_is_audited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cfg, engine) = sample_engine(dir.path());
    let app = app(engine, golden_now(), "s3cret");
    // The availability SLO over the whole sample month for every customer.
    let slo = cfg
        .slos
        .iter()
        .find(|s| s.indicator == slastream::model::slo::Indicator::ProbeAvailability)
        .expect("a probe availability SLO")
        .name
        .clone();
    let uri = format!("/api/v1/compliance?slo={slo}&month=2026-11");
    let (_, before) = get(&app, &uri).await;
    let total_before = before["total"].as_f64().expect("total");
    assert!(total_before > 0.0);
    let body = json!({
        "name": "provider outage",
        "from": "2026-11-03T00:00:00Z",
        "to": "2026-11-05T00:00:00Z",
        "slos": [slo],
        "reason": "force majeure",
        "author": "alice"
    })
    .to_string();
    let (status, created) = call(&app, post("/api/v1/exclusions", Some("s3cret"), body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).expect("json");
    let (_, after) = get(&app, &uri).await;
    let total_after = after["total"].as_f64().expect("total");
    // The two excluded days held events: they are gone from the month.
    let (_, excluded_days) = get(
        &app,
        &format!("/api/v1/compliance?slo={slo}&from=2026-11-03T00:00:00Z&to=2026-11-05T00:00:00Z"),
    )
    .await;
    assert_eq!(excluded_days["total"], 0);
    assert!(total_after < total_before, "{total_after} < {total_before}");

    let (_, audit) = get(&app, "/api/v1/audit").await;
    let entry = &audit["entries"][0];
    // `who` is the authenticated name (`http.admin_token`: "admin"), the
    // author stays as given.
    assert_eq!(entry["who"], "admin");
    assert_eq!(entry["after"]["author"], "alice");
    assert_eq!(entry["what"], "add");
    assert_eq!(entry["after"]["name"], "provider outage");
    assert!(entry["before"].is_null());

    let id = created["id"].as_u64().expect("id");
    let del = Request::delete(format!("/api/v1/exclusions/{id}?author=bob"))
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .expect("request");
    let (status, _) = call(&app, del).await;
    assert_eq!(status, StatusCode::OK);
    let (_, restored) = get(&app, &uri).await;
    assert_eq!(
        restored["total"], before["total"],
        "withdrawing restores the numbers exactly"
    );
    let (_, audit) = get(&app, "/api/v1/audit").await;
    assert_eq!(audit["entries"][1]["who"], "admin");
    assert_eq!(audit["entries"][1]["what"], "delete");
}
