//! The HTTP API of SPEC §4 (axum). The only place with JSON DTOs for HTTP.
//!
//! The server answers from the moment the process starts: `/healthz` needs
//! nothing, and every endpoint that reads state answers 503 until the state
//! is loaded (`AppState::set_loaded`). Reads run on the blocking pool, at most
//! `MAX_CONCURRENT_READS` at a time, under the engine's read lock, so each
//! answer is computed on one consistent state and the async workers (and with
//! them `/healthz`) never wait behind a scrape. A mutation is answered only
//! once it is persisted.
//!
//! Every route, the web UI's (`crate::ui`) included, sits behind one access
//! middleware (`access::guard`, SPEC §4.1).

pub mod access;
pub(crate) mod dto;
mod error;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use tokio::sync::Semaphore;

use crate::engine::query::{month_window, parse_month, BreachQuery, Scope};
use crate::engine::Engine;
use crate::health::Health;
use crate::model::slo::Exclusion;
use crate::model::time::{format_rfc3339, parse_rfc3339, Clock, Millis, MINUTE};
use crate::store::{state, Store};

pub use access::{ApiOptions, Caller};
pub use dto::REPORT_COLUMNS;
pub use error::ApiError;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Reads computed at the same time; more wait their turn (without holding
/// an async worker).
pub const MAX_CONCURRENT_READS: usize = 4;

/// Renders `/metrics`; provided by the caller so the API does not depend on
/// how metrics are gathered.
pub type MetricsFn = Arc<dyn Fn(&Engine, Millis) -> String + Send + Sync>;

/// The state the API reads and mutates, once loaded.
#[derive(Clone)]
pub struct Loaded {
    pub engine: Arc<RwLock<Engine>>,
    pub store: Arc<dyn Store>,
}

#[derive(Clone)]
pub struct AppState {
    loaded: Arc<OnceLock<Loaded>>,
    pub clock: Arc<dyn Clock>,
    pub access: Arc<access::Access>,
    /// `alerting.warn_at`, for the UI's clocks at risk.
    pub warn_at: f64,
    pub ready: Arc<AtomicBool>,
    pub metrics: MetricsFn,
    pub health: Arc<Health>,
    reads: Arc<Semaphore>,
}

impl AppState {
    /// An API whose state is still loading: `/healthz` answers, reads are 503
    /// until `set_loaded`.
    pub fn loading(
        clock: Arc<dyn Clock>,
        options: impl Into<ApiOptions>,
        metrics: MetricsFn,
        health: Arc<Health>,
    ) -> AppState {
        let options = options.into();
        AppState {
            loaded: Arc::new(OnceLock::new()),
            clock,
            access: Arc::new(access::Access::new(&options)),
            warn_at: options.warn_at,
            ready: Arc::new(AtomicBool::new(false)),
            metrics,
            health,
            reads: Arc::new(Semaphore::new(MAX_CONCURRENT_READS)),
        }
    }

    /// An API over loaded state (tests, tools).
    pub fn with_state(
        engine: Arc<RwLock<Engine>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        options: impl Into<ApiOptions>,
        metrics: MetricsFn,
    ) -> AppState {
        let health = Arc::new(Health::new(tokio_util::sync::CancellationToken::new()));
        let st = AppState::loading(clock, options, metrics, health);
        st.set_loaded(engine, store);
        st
    }

    /// Makes the loaded state available to every request.
    pub fn set_loaded(&self, engine: Arc<RwLock<Engine>>, store: Arc<dyn Store>) {
        let _ = self.loaded.set(Loaded { engine, store });
    }

    pub fn loaded(&self) -> Option<&Loaded> {
        self.loaded.get()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
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
        .merge(crate::ui::routes())
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                ApiError::NotFound("no such endpoint".into()).into_response()
            } else {
                crate::ui::not_found()
            }
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

type Params = Query<HashMap<String, String>>;

/// Runs `f` on the blocking pool under the engine's read lock.
pub(crate) async fn with_engine<T, F>(st: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
{
    let loaded = st.loaded().ok_or(ApiError::Loading)?.clone();
    let _permit = st
        .reads
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::NotReady)?;
    tokio::task::spawn_blocking(move || {
        // A writer that panicked fails the whole process (`Health`); until it
        // exits, answers come from what was applied.
        let engine = loaded.engine.read().unwrap_or_else(|e| e.into_inner());
        f(&engine)
    })
    .await
    .map_err(|e| ApiError::Internal(crate::health::join_error(&e)))?
}

/// `as_of` of every answer that reads state (SPEC §4): the watermark and the
/// instant used as now.
pub(crate) fn as_of(engine: &Engine, now: Millis) -> serde_json::Value {
    serde_json::json!({
        "watermark": engine.watermark().map(format_rfc3339),
        "now": format_rfc3339(now),
    })
}

/// Adds `as_of` to a JSON object answer.
fn stamped(mut v: serde_json::Value, engine: &Engine, now: Millis) -> Json<serde_json::Value> {
    if let Some(o) = v.as_object_mut() {
        o.insert("as_of".into(), as_of(engine, now));
    }
    Json(v)
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.health.failure() {
        None => Json(serde_json::json!({"status": "ok"})).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "failing", "error": why})),
        )
            .into_response(),
    }
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.loaded().is_some() && st.health.is_healthy() && st.ready.load(Ordering::SeqCst) {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::NotReady.into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let now = st.clock.now();
    let render = st.metrics.clone();
    let text = with_engine(&st, move |e| Ok(render(e, now))).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn slos(
    State(st): State<AppState>,
    Query(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    known_params(&p, &["at"])?;
    let now = st.clock.now();
    // The versions in force at `at` (SPEC §4), by default at now.
    let at = match p.get("at") {
        None => now,
        Some(v) => parse_rfc3339(v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "parameter \"at\" must be an RFC 3339 timestamp, got \"{v}\""
            ))
        })?,
    };
    with_engine(&st, move |engine| {
        let list: Vec<_> = engine
            .settings()
            .slos
            .iter()
            .map(|s| dto::slo_json(s, at))
            .collect();
        Ok(stamped(
            serde_json::json!({ "at": format_rfc3339(at), "slos": list }),
            engine,
            now,
        ))
    })
    .await
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

pub(crate) fn month_param(p: &HashMap<String, String>) -> Result<Option<(i16, i8)>, ApiError> {
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
    with_engine(&st, move |engine| compliance_answer(engine, &p, now)).await
}

fn compliance_answer(
    engine: &Engine,
    p: &HashMap<String, String>,
    now: Millis,
) -> Result<Json<serde_json::Value>, ApiError> {
    let slo = slo_param(engine, p, true)?.unwrap_or_default();
    let tz = zone_param(p, "tz")?;
    let tz_filter = zone_param(p, "timezone")?;
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
    let from = minute_param(p, "from")?;
    let to = minute_param(p, "to")?;
    let month = month_param(p)?;
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
    // Time to exhaustion is of the SLO's own window ending now, whatever
    // window was asked for.
    let exhaustion = engine.exhaustion_seconds(slo, &scope, &zone, now);
    Ok(stamped(
        dto::compliance_json(engine, slo, &scope, from, to, &numbers, exhaustion),
        engine,
        now,
    ))
}

/// The largest page of `/api/v1/breaches` a request may ask for.
pub const MAX_BREACHES_LIMIT: usize = 10_000;

async fn breaches(
    State(st): State<AppState>,
    Query(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    known_params(&p, &["slo", "customer", "from", "to", "limit", "cursor"])?;
    let now = st.clock.now();
    with_engine(&st, move |engine| breaches_answer(engine, &p, now)).await
}

/// SPEC §4 lists every breach by default; `limit` (and `cursor`, the
/// `next_cursor` of the previous page) opt into pages in the list's order.
fn breaches_answer(
    engine: &Engine,
    p: &HashMap<String, String>,
    now: Millis,
) -> Result<Json<serde_json::Value>, ApiError> {
    let slo = slo_param(engine, p, false)?;
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
    let limit = match p.get("limit") {
        None => None,
        Some(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_BREACHES_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "parameter \"limit\" must be a whole number from 1 to {MAX_BREACHES_LIMIT}, got \"{v}\""
                    ))
                })?,
        ),
    };
    let after = match p.get("cursor") {
        None => None,
        Some(v) => Some(dto::decode_cursor(v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "parameter \"cursor\" is not a cursor of this list, got \"{v}\""
            ))
        })?),
    };
    let paged = limit.is_some() || after.is_some();
    let q = BreachQuery {
        slo,
        customer,
        from: instant("from")?,
        to: instant("to")?,
        after,
        limit,
    };
    let page = engine.breaches_page(&q, now);
    let list: Vec<_> = page.breaches.iter().map(dto::breach_json).collect();
    let mut v = serde_json::json!({ "breaches": list });
    if paged {
        v["next_cursor"] = serde_json::json!(page.next.as_ref().map(dto::encode_cursor));
    }
    Ok(stamped(v, engine, now))
}

/// Rows of the report encoded per write: the text goes to the client as it
/// is written, never whole in memory.
const REPORT_STREAM_BUFFER: usize = 64 * 1024;

async fn report(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    known_params(&p, &["month", "format"])?;
    let now = st.clock.now();
    let Some((y, m)) = month_param(&p)? else {
        return Err(ApiError::BadRequest(
            "parameter \"month\" is required".into(),
        ));
    };
    let csv = match p.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "parameter \"format\" must be json or csv, got \"{other}\""
            )))
        }
    };
    // Every number under one read of the engine, so the rows and `as_of`
    // describe one state; the lock is released before any byte is sent, so
    // a slow client never holds up ingestion.
    let (rows, stamp, watermark) = with_engine(&st, move |engine| {
        Ok((
            dto::report_rows(engine, y, m, now, caller.only()),
            as_of(engine, now),
            engine.watermark(),
        ))
    })
    .await?;
    let month = format!("{y:04}-{m:02}");
    let (writer, reader) = tokio::io::duplex(REPORT_STREAM_BUFFER);
    // Encoding is work for the blocking pool; it writes into the pipe the
    // body reads from, and stops when the client goes away.
    tokio::task::spawn_blocking(move || {
        let out = tokio_util::io::SyncIoBridge::new(writer);
        let mut out = std::io::BufWriter::with_capacity(REPORT_STREAM_BUFFER, out);
        let written = if csv {
            dto::write_report_csv(&mut out, &rows)
        } else {
            dto::write_report_json(&mut out, &month, &rows, &stamp)
        };
        if let Err(e) = written.and_then(|()| std::io::Write::flush(&mut out)) {
            tracing::debug!(error = %e, "report not sent whole: the client went away");
        }
    });
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        reader,
        REPORT_STREAM_BUFFER,
    ));
    if csv {
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::HeaderName::from_static("x-slastream-watermark"),
                    watermark.map(format_rfc3339).unwrap_or_default(),
                ),
                (
                    header::HeaderName::from_static("x-slastream-now"),
                    format_rfc3339(now),
                ),
            ],
            body,
        )
            .into_response())
    } else {
        Ok((
            [(header::CONTENT_TYPE, "application/json".to_string())],
            body,
        )
            .into_response())
    }
}

async fn list_exclusions(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = st.clock.now();
    with_engine(&st, move |engine| {
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
        Ok(stamped(
            serde_json::json!({ "exclusions": runtime, "configured": config }),
            engine,
            now,
        ))
    })
    .await
}

/// Runs a mutation on the blocking pool under the engine's write lock and
/// persists the run-time exclusions and audit log before answering (SPEC
/// §3 Durability). The write happens under the lock, so a later state batch
/// can never carry an older copy. A store that cannot write fails the
/// process (`Health`): memory then holds a change the disk lacks, and only a
/// restart from the store is consistent again.
pub(crate) async fn mutate<T, F>(st: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut Engine) -> Result<T, ApiError> + Send + 'static,
{
    let loaded = st.loaded().ok_or(ApiError::Loading)?.clone();
    let health = st.health.clone();
    tokio::task::spawn_blocking(move || {
        let mut engine = loaded.engine.write().unwrap_or_else(|e| e.into_inner());
        let answer = f(&mut engine)?;
        let batch = state::exclusions_batch(&mut engine);
        if let Err(e) = loaded.store.write(batch) {
            health.fail("state store", &e);
            return Err(ApiError::Internal(
                "the change could not be persisted".into(),
            ));
        }
        Ok(answer)
    })
    .await
    .map_err(|e| ApiError::Internal(crate::health::join_error(&e)))?
}

async fn add_exclusion(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge)?;
    let req: dto::ExclusionRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid exclusion body: {e}")))?;
    let now = st.clock.now();
    let who = caller.name().to_string();
    let r = mutate(&st, move |engine| {
        let (exclusion, author): (Exclusion, String) = req.validate(engine)?;
        Ok(engine.add_exclusion_by(exclusion, author, who, now))
    })
    .await?;
    tracing::info!(id = r.id, who = %caller.name(), author = %r.author, "run-time exclusion added");
    Ok((StatusCode::CREATED, Json(dto::runtime_exclusion_json(&r))).into_response())
}

async fn delete_exclusion(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::BadRequest(format!("exclusion id must be a number, got \"{id}\""))
    })?;
    // `who` is the authenticated name, whatever the request claims.
    let who = caller.name().to_string();
    let now = st.clock.now();
    let r = mutate(&st, move |engine| {
        engine
            .remove_exclusion(id, who, now)
            .ok_or_else(|| ApiError::NotFound(format!("unknown exclusion {id}")))
    })
    .await?;
    tracing::info!(id, who = %caller.name(), "run-time exclusion withdrawn");
    Ok(Json(dto::runtime_exclusion_json(&r)).into_response())
}

async fn audit(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let now = st.clock.now();
    with_engine(&st, move |engine| {
        let mut entries: Vec<(u64, serde_json::Value)> = engine
            .audit()
            .iter()
            .map(|a| {
                (
                    a.seq,
                    serde_json::json!({
                        "seq": a.seq,
                        "when": format_rfc3339(a.at),
                        "who": a.who,
                        "what": a.action,
                        "exclusion_id": a.exclusion_id,
                        "before": a.before.as_ref().map(dto::runtime_exclusion_json),
                        "after": a.after.as_ref().map(dto::runtime_exclusion_json),
                    }),
                )
            })
            .collect();
        // SLO definition changes found at starts (SPEC §3), in one log
        // with the run-time exclusions.
        entries.extend(
            engine
                .definition_changes()
                .iter()
                .map(|d| (d.seq, dto::definition_change_json(d))),
        );
        entries.sort_by_key(|(seq, _)| *seq);
        let entries: Vec<_> = entries.into_iter().map(|(_, v)| v).collect();
        Ok(stamped(
            serde_json::json!({ "entries": entries }),
            engine,
            now,
        ))
    })
    .await
}
