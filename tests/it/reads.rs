//! Reads that do not grow with history: `/api/v1/breaches` in pages that
//! put end to end are the whole list (which stays the default answer), bad
//! page parameters named in a 400, and the monthly report sent as a stream
//! whose JSON and CSV carry the same rows.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::common::*;

/// 40 customers over 14 days of November 2026: a few hundred breaches.
fn engine(dir: &std::path::Path) -> (slastream::config::Config, slastream::engine::Engine) {
    let cfg = shipped_config(&dir.join("state"));
    let input = dir.join("in.ndjson");
    let mut settings = slastream::generate::GenSettings::from_config(
        &cfg,
        7,
        0,
        0.5,
        t("2026-11-01T00:00:00Z"),
        14 * slastream::model::time::DAY,
    );
    // Synthetic customers as well as the registry's: more breaches.
    settings.registry.clear();
    settings.customers = 40;
    let lines: Vec<String> = slastream::generate::Generator::new(settings)
        .map(|e| e.json)
        .collect();
    write_lines(&input, &lines);
    let engine = replay_into(&cfg, &input);
    (cfg, engine)
}

#[tokio::test]
async fn breaches_in_pages_put_end_to_end_are_the_whole_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cfg, engine) = engine(dir.path());
    let app = app(engine, golden_now(), "");
    let (status, whole) = get(&app, "/api/v1/breaches").await;
    assert_eq!(status, StatusCode::OK);
    // Without `limit` the answer is SPEC §4's: every breach, no cursor.
    assert!(whole.get("next_cursor").is_none(), "{whole}");
    let all = whole["breaches"].as_array().expect("breaches").clone();
    assert!(all.len() > 50, "{} breaches", all.len());
    for (query, want) in [
        (String::new(), all.clone()),
        (
            "&from=2026-11-05T00:00:00Z&to=2026-11-10T00:00:00Z".to_string(),
            all.iter()
                .filter(|b| {
                    let at = b["breached_at"].as_str().unwrap_or_default();
                    ("2026-11-05T00:00:00Z".."2026-11-10T00:00:00Z").contains(&at)
                })
                .cloned()
                .collect::<Vec<_>>(),
        ),
        (
            "&slo=resolution".to_string(),
            all.iter()
                .filter(|b| b["slo"] == "resolution")
                .cloned()
                .collect::<Vec<_>>(),
        ),
    ] {
        assert!(!want.is_empty(), "{query}");
        for limit in [1, 7, 50, 10_000] {
            let mut got = Vec::new();
            let mut uri = format!("/api/v1/breaches?limit={limit}{query}");
            loop {
                let (status, page) = get(&app, &uri).await;
                assert_eq!(status, StatusCode::OK, "{uri}: {page}");
                let rows = page["breaches"].as_array().expect("breaches");
                assert!(rows.len() <= limit);
                assert!(page["as_of"]["now"].is_string());
                got.extend(rows.iter().cloned());
                match page["next_cursor"].as_str() {
                    Some(c) => uri = format!("/api/v1/breaches?limit={limit}&cursor={c}{query}"),
                    None => {
                        assert!(page["next_cursor"].is_null(), "{page}");
                        break;
                    }
                }
                assert!(got.len() <= want.len(), "{uri}: pages never end");
            }
            assert_eq!(got, want, "limit {limit}{query}");
        }
    }
}

#[tokio::test]
async fn bad_page_parameters_are_a_400_naming_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cfg, engine) = engine(dir.path());
    let app = app(engine, golden_now(), "");
    for (uri, needle) in [
        ("/api/v1/breaches?limit=0", "limit"),
        ("/api/v1/breaches?limit=10001", "limit"),
        ("/api/v1/breaches?limit=-3", "limit"),
        ("/api/v1/breaches?limit=ten", "limit"),
        (
            "/api/v1/breaches?limit=10&cursor=bm90LWEtY3Vyc29y",
            "cursor",
        ),
        ("/api/v1/breaches?cursor=%21%21", "cursor"),
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{uri}: {msg:?} should name {needle:?}"
        );
    }
}

#[tokio::test]
async fn the_report_is_streamed_and_json_and_csv_carry_the_same_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_cfg, engine) = engine(dir.path());
    let customers = engine.customers().iter().count();
    let slos = engine.settings().slos.len();
    let app = app(engine, golden_now(), "");
    let resp = app
        .clone()
        .oneshot(
            Request::get("/api/v1/report?month=2026-11")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get(header::CONTENT_LENGTH).is_none(),
        "a streamed answer has no length up front"
    );
    let mut body = resp.into_body();
    let (mut frames, mut bytes) = (0, Vec::new());
    while let Some(f) = body.frame().await {
        if let Ok(data) = f.expect("frame").into_data() {
            frames += 1;
            bytes.extend_from_slice(&data);
        }
    }
    assert!(frames > 1, "the report came in {frames} piece(s)");
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("report JSON");
    assert_eq!(json["month"], "2026-11");
    assert!(json["as_of"]["watermark"].is_string());
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), customers * slos);

    let (status, csv) = call(
        &app,
        Request::get("/api/v1/report?month=2026-11&format=csv")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], slastream::api::REPORT_COLUMNS.join(","));
    assert_eq!(lines.len(), rows.len() + 1);
    for (line, row) in lines[1..].iter().zip(rows) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields[0], row["customer"].as_str().unwrap_or_default());
        assert_eq!(fields[3], row["slo"].as_str().unwrap_or_default());
        assert_eq!(fields[6], row["total"].to_string(), "{line}");
        assert_eq!(fields[11], row["status"].as_str().unwrap_or_default());
    }
}
