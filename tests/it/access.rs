//! SPEC §4.1 through the router: every role against every endpoint and
//! page, with reads behind tokens (`read_auth = true`); refusals that say
//! nothing about other customers; `who` in the audit log.

use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use slastream::api::{self, ApiOptions, AppState};
use slastream::config::{Config, Role, TokenDef};
use slastream::engine::Engine;
use slastream::model::time::{Clock, ManualClock, Millis};
use slastream::store::MemStore;

use crate::common::*;

pub const ADMIN_TOKEN: &str = "root-secret";
pub const OPS: &str = "ops-secret";
pub const LEAD: &str = "lead-secret";
pub const PORTAL: &str = "acme-secret";
/// The customer the `PORTAL` token may read.
pub const OWN: &str = "acme";
/// Another customer that exists.
pub const OTHER: &str = "globex";
/// A customer that does not exist.
pub const GHOST: &str = "no-such-customer";

fn token(name: &str, secret: &str, role: Role, customers: &[&str]) -> TokenDef {
    TokenDef {
        name: name.into(),
        sha256: Sha256::digest(secret.as_bytes()).into(),
        role,
        customers: customers.iter().map(|c| c.to_string()).collect(),
    }
}

/// The tokens of these tests: `http.admin_token`, a named admin, a viewer
/// and a customer token for `OWN`.
pub fn options(read_auth: bool) -> ApiOptions {
    ApiOptions {
        admin_token: ADMIN_TOKEN.into(),
        read_auth,
        tokens: vec![
            token("ops", OPS, Role::Admin, &[]),
            token("lead", LEAD, Role::Viewer, &[]),
            token("acme-portal", PORTAL, Role::Customer, &[OWN]),
        ],
        warn_at: Config::default().alerting.warn_at,
    }
}

pub fn app_with(engine: Engine, now: Millis, opts: ApiOptions) -> axum::Router {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(now));
    let st = AppState::with_state(
        Arc::new(RwLock::new(engine)),
        Arc::new(MemStore::default()),
        clock,
        opts,
        Arc::new(|e: &Engine, now| {
            slastream::export::render(e, now, &slastream::export::ExportOptions::default())
        }),
    );
    st.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    api::router(st)
}

/// The shipped configuration and sample events, replayed once per test.
pub fn sample(dir: &std::path::Path) -> Config {
    let cfg = shipped_config(dir);
    replay_into(&cfg, &root().join("config/sample-events.ndjson"));
    cfg
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    Wrong,
    AdminToken,
    Ops,
    Lead,
    Portal,
}

const EVERYONE: [Who; 6] = [
    Who::Nobody,
    Who::Wrong,
    Who::AdminToken,
    Who::Ops,
    Who::Lead,
    Who::Portal,
];

impl Who {
    fn secret(self) -> Option<&'static str> {
        match self {
            Who::Nobody => None,
            Who::Wrong => Some("guess"),
            Who::AdminToken => Some(ADMIN_TOKEN),
            Who::Ops => Some(OPS),
            Who::Lead => Some(LEAD),
            Who::Portal => Some(PORTAL),
        }
    }
}

fn req(method: &str, uri: &str, who: Who) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(s) = who.secret() {
        b = b.header(header::AUTHORIZATION, format!("Bearer {s}"));
    }
    b.body(Body::empty()).expect("request")
}

fn basic(uri: &str, secret: &str) -> Request<Body> {
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("browser:{secret}"));
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Basic {cred}"))
        .body(Body::empty())
        .expect("request")
}

/// What a read answers: `everyone` to readers of everything, `portal` to
/// the customer token.
struct Case {
    uri: String,
    everyone: u16,
    portal: u16,
}

fn read_cases(slo: &str) -> Vec<Case> {
    let c = |uri: String, portal: u16| {
        // Readers of everything learn that a customer does not exist.
        let everyone = if uri.contains(GHOST) { 404 } else { 200 };
        Case {
            uri,
            everyone,
            portal,
        }
    };
    vec![
        c("/api/v1/slos".into(), 403),
        c(format!("/api/v1/compliance?slo={slo}&customer={OWN}"), 200),
        c(
            format!("/api/v1/compliance?slo={slo}&customer={OWN}&month=2026-11"),
            200,
        ),
        c(
            format!("/api/v1/compliance?slo={slo}&customer={OTHER}"),
            403,
        ),
        c(
            format!("/api/v1/compliance?slo={slo}&customer={GHOST}"),
            403,
        ),
        c(
            format!("/api/v1/compliance?slo={slo}&customer={OWN}&customer={OTHER}"),
            403,
        ),
        c(format!("/api/v1/compliance?slo={slo}"), 403),
        c(
            format!("/api/v1/compliance?slo={slo}&segment=enterprise"),
            403,
        ),
        c(format!("/api/v1/breaches?customer={OWN}"), 200),
        c(format!("/api/v1/breaches?customer={OTHER}"), 403),
        c(format!("/api/v1/breaches?customer={GHOST}"), 403),
        c("/api/v1/breaches".into(), 403),
        c("/api/v1/report?month=2026-11".into(), 200),
        c("/api/v1/report?month=2026-11&format=csv".into(), 200),
        c("/api/v1/exclusions".into(), 403),
        c("/api/v1/audit".into(), 403),
        c("/".into(), 200),
        c("/customers".into(), 200),
        c(format!("/customers/{OWN}"), 200),
        c(format!("/customers/{OTHER}"), 403),
        c(format!("/customers/{GHOST}"), 403),
        c("/report?month=2026-11".into(), 200),
        c("/breaches".into(), 200),
        c(format!("/breaches?customer={OWN}"), 200),
        c(format!("/breaches?customer={OTHER}"), 403),
        c(format!("/breaches?customer={GHOST}"), 403),
        c("/exclusions".into(), 403),
        c("/audit".into(), 403),
    ]
}

#[tokio::test]
async fn every_role_against_every_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(true));
    let slo = &cfg.slos[0].name;
    let mut forbidden_api = Vec::new();
    let mut forbidden_ui = Vec::new();
    for case in read_cases(slo) {
        for who in EVERYONE {
            let (status, body) = call(&app, req("GET", &case.uri, who)).await;
            let want = match who {
                Who::Nobody | Who::Wrong => 401,
                Who::AdminToken | Who::Ops | Who::Lead => case.everyone,
                Who::Portal => case.portal,
            };
            assert_eq!(status.as_u16(), want, "{who:?} GET {}: {body}", case.uri);
            if status == StatusCode::FORBIDDEN {
                if case.uri.starts_with("/api/") {
                    forbidden_api.push(body.clone());
                } else {
                    forbidden_ui.push(body.clone());
                }
            }
            if status.is_client_error() && who == Who::Portal {
                for name in [OTHER, GHOST, "initech", "umbrella"] {
                    assert!(!body.contains(name), "{who:?} {}: {body}", case.uri);
                }
            }
        }
    }
    // One answer for every refusal: an unknown customer is refused exactly
    // like another one that exists.
    forbidden_api.dedup();
    forbidden_ui.dedup();
    assert_eq!(forbidden_api.len(), 1, "{forbidden_api:?}");
    assert_eq!(forbidden_ui.len(), 1, "{forbidden_ui:?}");
    // Unknown pages: 404 to a reader of everything, 403 to a customer token.
    let (s, _) = call(&app, req("GET", "/nowhere", Who::Lead)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, req("GET", "/nowhere", Who::Portal)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn health_metrics_and_the_style_sheet_stay_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(true));
    for uri in ["/healthz", "/readyz", "/metrics", "/ui/style.css"] {
        for who in EVERYONE {
            let (status, body) = call(&app, req("GET", uri, who)).await;
            assert_eq!(status, StatusCode::OK, "{who:?} {uri}: {body}");
        }
    }
}

#[tokio::test]
async fn a_customer_token_sees_only_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(true));
    let (_, body) = call(
        &app,
        req("GET", "/api/v1/report?month=2026-11", Who::Portal),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), cfg.slos.len());
    assert!(rows.iter().all(|r| r["customer"] == OWN), "{body}");
    let (_, csv) = call(
        &app,
        req(
            "GET",
            "/api/v1/report?month=2026-11&format=csv",
            Who::Portal,
        ),
    )
    .await;
    assert_eq!(csv.lines().count(), 1 + cfg.slos.len(), "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.starts_with("acme,")), "{csv}");
    // The same rows as a reader of everything gets for that customer.
    let (_, all) = call(&app, req("GET", "/api/v1/report?month=2026-11", Who::Lead)).await;
    let all: serde_json::Value = serde_json::from_str(&all).expect("json");
    let theirs: Vec<_> = all["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["customer"] == OWN)
        .cloned()
        .collect();
    assert_eq!(rows, &theirs);
    for page in ["/", "/customers", "/report?month=2026-11", "/breaches"] {
        let (status, html) = call(&app, req("GET", page, Who::Portal)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(html.contains(OWN), "{page}");
        for other in [OTHER, "initech", "umbrella"] {
            assert!(!html.contains(other), "{page} shows {other}");
        }
        assert!(
            !html.contains("href=\"/audit\""),
            "{page}: no link it may not follow"
        );
    }
}

#[tokio::test]
async fn browsers_read_with_basic_credentials_and_are_asked_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(true));
    let resp = tower::ServiceExt::oneshot(app.clone(), req("GET", "/", Who::Nobody))
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("challenge");
    assert!(challenge.to_str().unwrap_or("").starts_with("Basic"));
    let (status, _) = call(&app, basic("/", LEAD)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, basic(&format!("/customers/{OTHER}"), PORTAL)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, basic("/", "guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reads_are_open_without_read_auth_but_a_customer_token_stays_scoped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(false));
    let slo = &cfg.slos[0].name;
    for case in read_cases(slo) {
        let (status, body) = call(&app, req("GET", &case.uri, Who::Nobody)).await;
        assert_eq!(status.as_u16(), case.everyone, "GET {}: {body}", case.uri);
        let (status, _) = call(&app, req("GET", &case.uri, Who::Portal)).await;
        assert_eq!(status.as_u16(), case.portal, "portal GET {}", case.uri);
    }
    let (status, _) = call(&app, req("GET", "/", Who::Wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong token is refused");
}

fn exclusion_body(author: &str) -> String {
    json!({"name": "x", "from": "2026-11-02T00:00:00Z", "to": "2026-11-03T00:00:00Z", "author": author})
        .to_string()
}

fn post_json(uri: &str, auth: Option<String>, body: String) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(Body::from(body)).expect("request")
}

pub fn post_form(uri: &str, fields: &[(&str, &str)], auth: Option<String>) -> Request<Body> {
    let body = serde_urlencoded::to_string(fields).expect("form");
    let mut b =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    b.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn only_admins_change_exclusions_and_who_is_the_token_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let app = app_with(restore(&cfg), golden_now(), options(true));
    let uri = "/api/v1/exclusions";
    for (who, want) in [
        (Who::Nobody, 401),
        (Who::Wrong, 401),
        (Who::Lead, 403),
        (Who::Portal, 403),
    ] {
        let auth = who.secret().map(|s| format!("Bearer {s}"));
        let (status, body) = call(&app, post_json(uri, auth, exclusion_body("eve"))).await;
        assert_eq!(status.as_u16(), want, "{who:?}: {body}");
    }
    // A browser's Basic credentials never authorize a change.
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("b:{OPS}"));
    let (status, _) = call(
        &app,
        post_json(uri, Some(format!("Basic {cred}")), exclusion_body("eve")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = call(
        &app,
        post_json(uri, Some(format!("Bearer {OPS}")), exclusion_body("alice")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        &app,
        post_json(
            uri,
            Some(format!("Bearer {ADMIN_TOKEN}")),
            exclusion_body("bob"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id: u64 = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_u64()
        .expect("id");
    for who in [Who::Nobody, Who::Lead, Who::Portal] {
        let (status, _) = call(&app, req("DELETE", &format!("{uri}/{id}"), who)).await;
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
            "{who:?}"
        );
    }
    let (status, _) = call(&app, req("DELETE", &format!("{uri}/{id}"), Who::Ops)).await;
    assert_eq!(status, StatusCode::OK);

    // The UI's forms: the token typed into the form, nothing else.
    let form = [
        ("name", "window"),
        ("from", "2026-11-05T00:00:00Z"),
        ("to", "2026-11-05T01:00:00Z"),
        ("author", "carol"),
    ];
    let with = |t: &'static str| {
        let mut f = form.to_vec();
        f.push(("token", t));
        f
    };
    let (status, _) = call(&app, post_form("/exclusions", &form, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &app,
        post_form("/exclusions", &form, Some(format!("Bearer {OPS}"))),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a header does not sign a form"
    );
    let (status, _) = call(
        &app,
        post_form("/exclusions", &form, Some(format!("Basic {cred}"))),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "nor do a browser's credentials"
    );
    let (status, _) = call(&app, post_form("/exclusions", &with(LEAD), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, post_form("/exclusions", &with(PORTAL), None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(&app, post_form("/exclusions", &with(OPS), None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, x) = get_as(&app, "/api/v1/exclusions", LEAD).await;
    let added = x["exclusions"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["author"] == "carol"))
        .cloned()
        .expect("added by the form");
    let id = added["id"].as_u64().expect("id");
    let withdraw = format!("/exclusions/{id}/withdraw");
    let (status, _) = call(&app, post_form(&withdraw, &[("token", LEAD)], None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, post_form(&withdraw, &[("token", ADMIN_TOKEN)], None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let (_, audit) = get_as(&app, "/api/v1/audit", LEAD).await;
    let who: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["what"].as_str().unwrap_or(""),
                e["who"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("add", "ops"),
            ("add", "admin"),
            ("delete", "ops"),
            ("add", "ops"),
            ("delete", "admin")
        ]
    );
    assert_eq!(
        audit["entries"][0]["after"]["author"], "alice",
        "the author stays as given"
    );
}

#[tokio::test]
async fn without_an_admin_token_nothing_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = sample(dir.path());
    let mut opts = options(false);
    opts.admin_token.clear();
    opts.tokens.retain(|t| t.role != Role::Admin);
    let app = app_with(restore(&cfg), golden_now(), opts);
    let (status, body) = call(
        &app,
        post_json(
            "/api/v1/exclusions",
            Some(format!("Bearer {LEAD}")),
            exclusion_body("x"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("no admin token is configured"), "{body}");
}

pub async fn get_as(
    app: &axum::Router,
    uri: &str,
    secret: &str,
) -> (StatusCode, serde_json::Value) {
    let (status, body) = call(
        app,
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {secret}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
    )
}
