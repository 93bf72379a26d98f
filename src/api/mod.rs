//! The HTTP API of SPEC §4 (axum). The only place with JSON DTOs for HTTP.
//! Queries take a read lock on the engine, so each answer is computed on one
//! consistent state while ingestion waits between batches.

mod dto;
mod error;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};

use crate::engine::query::{month_window, parse_month, Scope};
use crate::engine::Engine;
use crate::model::slo::Exclusion;
use crate::model::time::{format_rfc3339, parse_rfc3339, Clock, Millis, MINUTE};

pub use dto::REPORT_COLUMNS;
pub use error::ApiError;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Renders `/metrics`; provided by the caller so the API does not depend on
/// how metrics are gathered.
pub type MetricsFn = Arc<dyn Fn(&Engine, Millis) -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<RwLock<Engine>>,
    pub clock: Arc<dyn Clock>,
    pub admin_token: String,
    pub ready: Arc<AtomicBool>,
    pub metrics: MetricsFn,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/slos", get(slos))
        .route("/api/v1/compliance", get(compliance))
        .route("/api/v1/breaches", get(breaches))
        .route("/api/v1/report", get(report))
        .route(
            "/api/v1/exclusions",
            get(list_exclusions).post(add_exclusion),
        )
        .route("/api/v1/exclusions/{id}", delete(delete_exclusion))
        .route("/api/v1/audit", get(audit))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

type Params = Query<HashMap<String, String>>;

fn read(state: &AppState) -> std::sync::RwLockReadGuard<'_, Engine> {
    // A panic while holding the lock leaves the engine as it was between
    // batches; reading it is still meaningful.
    state.engine.read().unwrap_or_else(|e| e.into_inner())
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.ready.load(Ordering::SeqCst) {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::NotReady.into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let now = st.clock.now();
    let text = (st.metrics)(&read(&st), now);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn slos(State(st): State<AppState>) -> Json<serde_json::Value> {
    let engine = read(&st);
    let list: Vec<_> = engine.settings().slos.iter().map(dto::slo_json).collect();
    Json(serde_json::json!({ "slos": list }))
}

fn known_params(p: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    for k in p.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!("unknown parameter \"{k}\"")));
        }
    }
    Ok(())
}

fn slo_param(
    engine: &Engine,
    p: &HashMap<String, String>,
    required: bool,
) -> Result<Option<usize>, ApiError> {
    match p.get("slo") {
        None if required => Err(ApiError::BadRequest("parameter \"slo\" is required".into())),
        None => Ok(None),
        Some(name) => engine
            .slo_index(name)
            .map(Some)
            .ok_or_else(|| ApiError::NotFound(format!("unknown SLO \"{name}\""))),
    }
}

fn zone_param(
    p: &HashMap<String, String>,
    key: &str,
) -> Result<Option<jiff::tz::TimeZone>, ApiError> {
    match p.get(key) {
        None => Ok(None),
        Some(z) => jiff::tz::TimeZone::get(z).map(Some).map_err(|_| {
            ApiError::BadRequest(format!("parameter \"{key}\": unknown time zone \"{z}\""))
        }),
    }
}

fn minute_param(p: &HashMap<String, String>, key: &str) -> Result<Option<Millis>, ApiError> {
    let Some(v) = p.get(key) else { return Ok(None) };
    let t = parse_rfc3339(v).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "parameter \"{key}\" must be an RFC 3339 timestamp, got \"{v}\""
        ))
    })?;
    if t.rem_euclid(MINUTE) != 0 {
        return Err(ApiError::BadRequest(format!(
            "parameter \"{key}\" must be a whole minute, got \"{v}\""
        )));
    }
    Ok(Some(t))
}

fn month_param(p: &HashMap<String, String>) -> Result<Option<(i16, i8)>, ApiError> {
    match p.get("month") {
        None => Ok(None),
        Some(m) => parse_month(m).map(Some).ok_or_else(|| {
            ApiError::BadRequest(format!("parameter \"month\" must be YYYY-MM, got \"{m}\""))
        }),
    }
}

async fn compliance(
    State(st): State<AppState>,
    Query(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    known_params(
        &p,
        &[
            "slo", "customer", "segment", "timezone", "from", "to", "month", "tz",
        ],
    )?;
    let now = st.clock.now();
    let engine = read(&st);
    let slo = slo_param(&engine, &p, true)?.unwrap_or_default();
    let tz = zone_param(&p, "tz")?;
    let tz_filter = zone_param(&p, "timezone")?;
    let scope = match p.get("customer") {
        Some(c) => {
            for k in ["segment", "timezone"] {
                if p.contains_key(k) {
                    return Err(ApiError::BadRequest(format!(
                        "parameter \"{k}\" cannot be combined with \"customer\""
                    )));
                }
            }
            let idx = engine
                .customers()
                .lookup(c)
                .ok_or_else(|| ApiError::NotFound(format!("unknown customer \"{c}\"")))?;
            Scope::Customer(idx)
        }
        None => Scope::Filter {
            segment: p.get("segment").cloned(),
            timezone: p.get("timezone").cloned(),
        },
    };
    // Month and own-window queries need a zone: the customer's, else tz, else
    // the timezone filter, else UTC.
    let zone = match &scope {
        Scope::Customer(c) => engine.customers().get(*c).zone.clone(),
        Scope::Filter { .. } => tz.or(tz_filter).unwrap_or(jiff::tz::TimeZone::UTC),
    };
    let from = minute_param(&p, "from")?;
    let to = minute_param(&p, "to")?;
    let month = month_param(&p)?;
    let (from, to) = match (month, from, to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(ApiError::BadRequest(
                "parameter \"month\" cannot be combined with \"from\"/\"to\"".into(),
            ))
        }
        (Some((y, m)), None, None) => month_window(y, m, &zone)
            .ok_or_else(|| ApiError::BadRequest("parameter \"month\" is out of range".into()))?,
        (None, Some(f), Some(t)) => {
            if f >= t {
                return Err(ApiError::BadRequest(
                    "parameter \"to\" must be after \"from\"".into(),
                ));
            }
            (f, t)
        }
        (None, Some(_), None) => {
            return Err(ApiError::BadRequest(
                "parameter \"to\" is required with \"from\"".into(),
            ))
        }
        (None, None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "parameter \"from\" is required with \"to\"".into(),
            ))
        }
        (None, None, None) => engine.own_window(slo, &zone, now),
    };
    let numbers = engine.numbers(slo, &scope, from, to, now);
    Ok(Json(dto::compliance_json(
        &engine, slo, &scope, from, to, &numbers,
    )))
}

async fn breaches(
    State(st): State<AppState>,
    Query(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    known_params(&p, &["slo", "customer", "from", "to"])?;
    let now = st.clock.now();
    let engine = read(&st);
    let slo = slo_param(&engine, &p, false)?;
    let customer = match p.get("customer") {
        None => None,
        Some(c) => Some(
            engine
                .customers()
                .lookup(c)
                .ok_or_else(|| ApiError::NotFound(format!("unknown customer \"{c}\"")))?,
        ),
    };
    let instant = |key: &str| -> Result<Option<Millis>, ApiError> {
        match p.get(key) {
            None => Ok(None),
            Some(v) => parse_rfc3339(v).map(Some).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "parameter \"{key}\" must be an RFC 3339 timestamp, got \"{v}\""
                ))
            }),
        }
    };
    let from = instant("from")?;
    let to = instant("to")?;
    let list: Vec<_> = engine
        .breaches(slo, customer, now)
        .into_iter()
        .filter(|b| from.is_none_or(|f| b.breached_at >= f) && to.is_none_or(|t| b.breached_at < t))
        .map(|b| dto::breach_json(&b))
        .collect();
    Ok(Json(serde_json::json!({ "breaches": list })))
}

async fn report(State(st): State<AppState>, Query(p): Params) -> Result<Response, ApiError> {
    known_params(&p, &["month", "format"])?;
    let now = st.clock.now();
    let engine = read(&st);
    let Some((y, m)) = month_param(&p)? else {
        return Err(ApiError::BadRequest(
            "parameter \"month\" is required".into(),
        ));
    };
    let rows = dto::report_rows(&engine, y, m, now);
    // The rows are computed; encoding them needs no engine.
    drop(engine);
    let month = format!("{y:04}-{m:02}");
    match p.get("format").map(String::as_str) {
        None | Some("json") => {
            // Encoded straight from the rows: a report of every customer is
            // large, and a `serde_json::Value` of it costs as much again.
            #[derive(serde::Serialize)]
            struct Report<'a> {
                month: &'a str,
                rows: &'a [dto::ReportRow],
            }
            Ok(Json(Report {
                month: &month,
                rows: &rows,
            })
            .into_response())
        }
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            dto::report_csv(&rows),
        )
            .into_response()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "parameter \"format\" must be json or csv, got \"{other}\""
        ))),
    }
}

fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if st.admin_token.is_empty() {
        return Err(ApiError::Forbidden);
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), st.admin_token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

async fn list_exclusions(State(st): State<AppState>) -> Json<serde_json::Value> {
    let engine = read(&st);
    let config: Vec<_> = engine
        .settings()
        .exclusions
        .iter()
        .map(|x| dto::exclusion_json(None, x))
        .collect();
    let runtime: Vec<_> = engine
        .runtime_exclusions()
        .iter()
        .map(dto::runtime_exclusion_json)
        .collect();
    Json(serde_json::json!({ "exclusions": runtime, "configured": config }))
}

async fn add_exclusion(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&st, &headers)?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let req: dto::ExclusionRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid exclusion body: {e}")))?;
    let now = st.clock.now();
    let mut engine = st.engine.write().unwrap_or_else(|e| e.into_inner());
    let (exclusion, author): (Exclusion, String) = req.validate(&engine)?;
    let r = engine.add_exclusion(exclusion, author, now);
    Ok((StatusCode::CREATED, Json(dto::runtime_exclusion_json(&r))).into_response())
}

async fn delete_exclusion(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    authorize(&st, &headers)?;
    let id: u64 = id.parse().map_err(|_| {
        ApiError::BadRequest(format!("exclusion id must be a number, got \"{id}\""))
    })?;
    let who = p
        .get("author")
        .cloned()
        .unwrap_or_else(|| "admin".to_string());
    let now = st.clock.now();
    let mut engine = st.engine.write().unwrap_or_else(|e| e.into_inner());
    let r = engine
        .remove_exclusion(id, who, now)
        .ok_or_else(|| ApiError::NotFound(format!("unknown exclusion {id}")))?;
    Ok(Json(dto::runtime_exclusion_json(&r)).into_response())
}

async fn audit(State(st): State<AppState>) -> Json<serde_json::Value> {
    let engine = read(&st);
    let entries: Vec<_> = engine
        .audit()
        .iter()
        .map(|a| {
            serde_json::json!({
                "seq": a.seq,
                "when": format_rfc3339(a.at),
                "who": a.who,
                "what": a.action,
                "exclusion_id": a.exclusion_id,
                "before": a.before.as_ref().map(dto::runtime_exclusion_json),
                "after": a.after.as_ref().map(dto::runtime_exclusion_json),
            })
        })
        .collect();
    Json(serde_json::json!({ "entries": entries }))
}
