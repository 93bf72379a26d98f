//! The web UI (SPEC §4.2): every page is valid HTML whose internal links
//! all answer; the numbers a page shows are the API's for the same scope;
//! and headless Chromium with JavaScript off renders every page of the
//! real binary (screenshots under `$CARGO_TARGET_DIR/ui-screenshots/`).

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use scraper::{Html, Selector};
use serde_json::{json, Value};

use crate::access::{app_with, options, post_form, sample, ADMIN_TOKEN};
use crate::common::*;

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("selector")
}

/// Parses a page; any HTML parse error fails the test.
fn parse(uri: &str, text: &str) -> Html {
    let doc = Html::parse_document(text);
    assert!(
        doc.errors.is_empty(),
        "{uri} is not valid HTML: {:?}\n{text}",
        doc.errors
    );
    assert!(text.starts_with("<!DOCTYPE html>"), "{uri}: doctype");
    doc
}

/// Every internal address a page points at: links, style sheets, images,
/// and forms (with their method).
fn targets(doc: &Html) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (selector, attr) in [
        ("a[href]", "href"),
        ("link[href]", "href"),
        ("img[src]", "src"),
    ] {
        for e in doc.select(&sel(selector)) {
            if let Some(v) = e.value().attr(attr) {
                out.push(("get".to_string(), v.to_string()));
            }
        }
    }
    for e in doc.select(&sel("form[action]")) {
        let method = e.value().attr("method").unwrap_or("get").to_lowercase();
        if let Some(v) = e.value().attr("action") {
            out.push((method, v.to_string()));
        }
    }
    out.retain(|(_, u)| u.starts_with('/'));
    out
}

async fn add_exclusion(app: &axum::Router) {
    let body = json!({"name": "provider <b>outage</b>", "from": "2026-11-03T00:00:00Z",
        "to": "2026-11-03T06:00:00Z", "reason": "a & b", "author": "alice"});
    let (status, text) = call(
        app,
        Request::post("/api/v1/exclusions")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN_TOKEN}"))
            .body(Body::from(body.to_string()))
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
}

#[tokio::test]
async fn every_page_is_valid_html_and_every_internal_link_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(false));
    add_exclusion(&app).await;
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/".to_string()]);
    let mut forms = BTreeSet::new();
    let mut pages = 0;
    while let Some(uri) = queue.pop_front() {
        if !seen.insert(uri.clone()) {
            continue;
        }
        let (status, text) = call(
            &app,
            Request::get(&uri).body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{uri}: {text}");
        if uri.starts_with("/api/") || uri.ends_with(".css") {
            continue;
        }
        pages += 1;
        assert!(pages < 400, "the crawl does not end");
        let doc = parse(&uri, &text);
        assert!(!text.contains("<b>outage</b>"), "{uri}: values are escaped");
        for (method, target) in targets(&doc) {
            if method == "get" {
                queue.push_back(target);
            } else {
                forms.insert(target);
            }
        }
    }
    for page in [
        "/",
        "/customers",
        "/report",
        "/breaches",
        "/exclusions",
        "/audit",
        "/customers/acme",
    ] {
        assert!(
            seen.contains(page),
            "{page} is reachable from the start page"
        );
    }
    // Each form's action exists: without a token it asks for one.
    assert!(forms.contains("/exclusions") && forms.iter().any(|f| f.ends_with("/withdraw")));
    for action in forms {
        let (status, _) = call(&app, post_form(&action, &[], None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{action}");
    }
    // Error pages are pages too.
    let (status, text) = call(
        &app,
        Request::get("/customers/nobody")
            .body(Body::empty())
            .expect("r"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    parse("/customers/nobody", &text);
}

/// Seconds of wall time a page read and the API read after it may lie
/// apart.
const LIVE_SECONDS: f64 = 5.0;

/// A page's numbers against the API's, `tolerance` apart at most (0 for a
/// fixed clock).
fn same(what: &str, page: &str, api: &Value, tolerance: f64) {
    let shown = match page.parse::<f64>() {
        Ok(x) => json!(x),
        Err(_) if page == "null" => Value::Null,
        Err(_) => json!(page),
    };
    // On the wall clock, a window's seconds grow between the two reads: by
    // at most a few seconds, which early in a month is more than any
    // relative bound allows.
    let field = what.rsplit(' ').next().unwrap_or_default();
    let slack = if tolerance > 0.0 && matches!(field, "total" | "good" | "bad" | "excluded") {
        LIVE_SECONDS
    } else {
        0.0
    };
    match (shown.as_f64(), api.as_f64()) {
        // serde_json reads floats to within an ulp, hence the 1e-12.
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= tolerance.max(1e-12) * b.abs().max(1.0) + slack,
            "{what}: page {a} API {b}"
        ),
        _ => assert_eq!(shown, *api, "{what}"),
    }
}

/// The rows of a page table carrying `data-slo` and numbers by field.
fn number_rows<'a>(
    doc: &'a Html,
    table: &str,
) -> Vec<(scraper::ElementRef<'a>, Vec<(String, String)>)> {
    doc.select(&sel(&format!("table#{table} tbody tr")))
        .map(|tr| {
            let cells = tr
                .select(&sel("td[data-field]"))
                .filter_map(|td| {
                    Some((
                        td.value().attr("data-field")?.to_string(),
                        td.value().attr("data-value")?.to_string(),
                    ))
                })
                .collect();
            (tr, cells)
        })
        .collect()
}

/// Checks every number of the overview, a customer page and the report
/// against the API; `get` reads either through the router or the binary.
async fn check_numbers<F, Fut>(mut get_text: F, tolerance: f64)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let api = |text: String| serde_json::from_str::<Value>(&text).expect("json");
    let overview = Html::parse_document(&get_text("/".into()).await);
    let rows = number_rows(&overview, "overview");
    assert!(!rows.is_empty());
    for (tr, cells) in rows {
        let a = |k: &str| tr.value().attr(k).unwrap_or_default().to_string();
        let q = serde_urlencoded::to_string([
            ("slo", a("data-slo")),
            ("segment", a("data-segment")),
            ("timezone", a("data-timezone")),
            ("from", a("data-from")),
            ("to", a("data-to")),
        ])
        .expect("query");
        let answer = api(get_text(format!("/api/v1/compliance?{q}")).await);
        for (field, value) in cells {
            same(
                &format!("overview {q} {field}"),
                &value,
                &answer[&field],
                tolerance,
            );
        }
    }
    let page = Html::parse_document(&get_text("/customers/acme".into()).await);
    let rows = number_rows(&page, "slos");
    assert!(rows.len() >= 5);
    for (tr, cells) in rows {
        let a = |k: &str| tr.value().attr(k).unwrap_or_default().to_string();
        let q = serde_urlencoded::to_string([
            ("slo", a("data-slo")),
            ("customer", "acme".into()),
            ("from", a("data-from")),
            ("to", a("data-to")),
        ])
        .expect("query");
        let answer = api(get_text(format!("/api/v1/compliance?{q}")).await);
        for (field, value) in cells {
            same(
                &format!("customer page {q} {field}"),
                &value,
                &answer[&field],
                tolerance,
            );
        }
        assert!(
            tr.select(&sel("svg polyline")).next().is_some(),
            "a burn-down per SLO"
        );
    }
    let report = Html::parse_document(&get_text("/report?month=2026-11".into()).await);
    let answer = api(get_text("/api/v1/report?month=2026-11".into()).await);
    let rows = number_rows(&report, "report");
    assert!(!rows.is_empty());
    for (tr, cells) in rows {
        let (c, s) = (
            tr.value().attr("data-customer"),
            tr.value().attr("data-slo"),
        );
        let row = answer["rows"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|r| r["customer"].as_str() == c && r["slo"].as_str() == s)
            })
            .expect("the API has the row");
        for (field, value) in cells {
            same(
                &format!("report {c:?} {s:?} {field}"),
                &value,
                &row[&field],
                tolerance,
            );
        }
    }
}

#[tokio::test]
async fn pages_show_the_numbers_of_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(false));
    check_numbers(
        |uri| {
            let app = app.clone();
            async move {
                let (status, text) =
                    call(&app, Request::get(&uri).body(Body::empty()).expect("r")).await;
                assert_eq!(status, StatusCode::OK, "{uri}: {text}");
                text
            }
        },
        0.0,
    )
    .await;
}

/// A Chromium profile with JavaScript off. (`--blink-settings=
/// scriptEnabled=false` also turns it off, but then `--dump-dom` and
/// `--screenshot` produce nothing in the new headless mode.)
fn no_javascript_profile(dir: &Path) -> PathBuf {
    let profile = dir.join("chromium");
    std::fs::create_dir_all(profile.join("Default")).expect("profile dir");
    std::fs::write(
        profile.join("Default/Preferences"),
        r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
    )
    .expect("preferences");
    // Proof that scripts do not run in it.
    let dom = chromium(
        &profile,
        &["--dump-dom".into(), "data:text/html,<p id=p>off</p><script>document.getElementById('p').textContent='ran'</script>".into()],
    );
    assert!(
        dom.contains(">off<") && !dom.contains(">ran<"),
        "JavaScript is off: {dom}"
    );
    profile
}

/// Headless Chromium, no network but loopback.
fn chromium(profile: &Path, args: &[String]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("chromium (scripts/setup.sh --test installs it)");
    assert!(out.status.success(), "chromium {args:?}: {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

#[tokio::test]
async fn chromium_without_javascript_renders_every_page_of_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_port();
    let _server = Killed(
        Command::new(env!("CARGO_BIN_EXE_slastream"))
            .args(["replay", "--config"])
            .arg(root().join("config/slastream.toml"))
            .arg("--input")
            .arg(root().join("config/sample-events.ndjson"))
            .arg("--then-serve")
            .env("SLASTREAM__STATE__PATH", dir.path().join("state"))
            .env("SLASTREAM__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("SLASTREAM__HTTP__ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn slastream"),
    );
    let base = format!("http://127.0.0.1:{http}");
    wait_until("readyz", Duration::from_secs(60), || {
        let url = format!("{base}/readyz");
        async move {
            reqwest::get(url)
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/api/v1/exclusions"))
        .bearer_auth(ADMIN_TOKEN)
        .json(
            &json!({"name": "maintenance", "from": "2026-11-03T00:00:00Z",
            "to": "2026-11-03T06:00:00Z", "author": "alice", "reason": "planned"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 201);
    let profile = no_javascript_profile(dir.path());
    let shots = screenshots_dir();
    let pages = [
        ("start", "/"),
        ("customers", "/customers"),
        ("customer", "/customers/acme"),
        ("report", "/report?month=2026-11"),
        ("breaches", "/breaches"),
        ("exclusions", "/exclusions"),
        ("audit", "/audit"),
    ];
    for (name, path) in pages {
        let url = format!("{base}{path}");
        let dom = chromium(&profile, &["--dump-dom".into(), url.clone()]);
        let doc = Html::parse_document(&dom);
        let h1: String = doc
            .select(&sel("main h1"))
            .next()
            .map(|e| e.text().collect())
            .unwrap_or_default();
        assert!(!h1.is_empty(), "{path}: rendered without scripts:\n{dom}");
        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        chromium(
            &profile,
            &[
                format!("--screenshot={}", png.display()),
                "--window-size=1280,1600".into(),
                url,
            ],
        );
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 10_000,
            "{}: a screenshot ({size} bytes)",
            png.display()
        );
    }
    // What Chromium rendered carries the API's numbers. The binary runs on
    // the wall clock, so availability totals move between the two reads by
    // the time in between; everything else is exact.
    let profile2 = profile.clone();
    check_numbers(
        move |uri| {
            let url = format!("{base}{uri}");
            let profile = profile2.clone();
            async move {
                if uri.starts_with("/api/") {
                    reqwest::get(&url)
                        .await
                        .expect("get")
                        .text()
                        .await
                        .expect("text")
                } else {
                    tokio::task::spawn_blocking(move || {
                        chromium(&profile, &["--dump-dom".into(), url])
                    })
                    .await
                    .expect("chromium")
                }
            }
        },
        1e-4,
    )
    .await;
}
