//! The web UI of SPEC §4.2: pages rendered on the server (maud, which
//! escapes every value), no JavaScript, charts as inline SVG.
//!
//! Every number comes from the engine's query functions that the API uses
//! (`Engine::numbers`, `own_window`, `breaches`, `open_clocks`,
//! `api::dto::report_rows_for`), under the same read path (`with_engine`),
//! so a page and the API agree for the same scope. Access is the API's: the
//! routes sit behind `api::access::guard`, which gives each handler the
//! [`Caller`]; a customer token sees only its customers. Pages hold at most
//! a page of customers or rows, so they stay fast with many customers.
//!
//! Adding or withdrawing an exclusion is a form whose `token` field must be
//! an admin token (checked by the access layer): a token typed into the
//! form is something another site cannot supply, so the forms need no
//! other cross-site protection.

mod chart;
mod pages;

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::dto::{self, ExclusionRequest};
use crate::api::{mutate, with_engine, ApiError, AppState, Caller};
use crate::engine::customers::{zone_of, CustomerIdx};
use crate::engine::query::{BreachQuery, ClockState, Numbers, Scope};
use crate::engine::Engine;
use crate::model::time::Millis;

/// The style sheet, open like `/healthz` (it holds nothing about anyone).
pub const STYLE_PATH: &str = "/ui/style.css";
/// Customers (or rows) on one page of a list.
pub const PAGE_SIZE: usize = 50;
/// Breaches and open clocks shown on one page.
pub const ROWS_PER_PAGE: usize = 100;
/// Points of a burn-down chart over the SLO's window.
const CHART_STEPS: i64 = 48;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(start))
        .route("/customers", get(customers))
        .route("/customers/{id}", get(customer))
        .route("/report", get(report))
        .route("/breaches", get(breaches))
        .route("/exclusions", get(exclusions).post(add_exclusion))
        .route("/exclusions/{id}/withdraw", post(withdraw_exclusion))
        .route("/audit", get(audit))
        .route(STYLE_PATH, get(style))
}

type Params = Query<HashMap<String, String>>;

/// An HTML answer with the headers every page carries: no scripts, no
/// framing, forms only to this server.
fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A page for an API error (the same words as the API's JSON).
pub struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError(e)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if let ApiError::Internal(why) = &self.0 {
            tracing::error!(error = %why, "page failed");
        }
        let mut resp = html(
            status,
            pages::error(status, &self.0.to_string()).into_string(),
        );
        if status == StatusCode::UNAUTHORIZED {
            // A browser asks for the token (as password) and resends it.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"slastream\", charset=\"UTF-8\""),
            );
        }
        resp
    }
}

/// The page for a request the access layer refused.
pub fn refusal(e: &ApiError) -> Response {
    let e = match e {
        ApiError::Unauthorized => ApiError::Unauthorized,
        ApiError::NotAllowed => ApiError::NotAllowed,
        ApiError::TooLarge => ApiError::TooLarge,
        _ => ApiError::Forbidden,
    };
    UiError(e).into_response()
}

/// The page for an unknown address.
pub fn not_found() -> Response {
    UiError(ApiError::NotFound("no such page".into())).into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

/// What every page shows in its header.
pub struct Frame<'a> {
    pub caller: &'a Caller,
    pub watermark: Option<Millis>,
    pub now: Millis,
    /// The navigation entry of this page.
    pub current: &'static str,
}

fn frame<'a>(engine: &Engine, caller: &'a Caller, now: Millis, current: &'static str) -> Frame<'a> {
    Frame {
        caller,
        watermark: engine.watermark(),
        now,
        current,
    }
}

/// Runs a page's renderer on the engine like an API read.
async fn page<F>(st: &AppState, f: F) -> Result<Response, UiError>
where
    F: FnOnce(&Engine, Millis) -> Result<String, ApiError> + Send + 'static,
{
    let now = st.clock.now();
    let body = with_engine(st, move |engine| f(engine, now)).await?;
    Ok(html(StatusCode::OK, body))
}

fn page_param(p: &HashMap<String, String>) -> Result<usize, ApiError> {
    match p.get("page").map(String::as_str) {
        None | Some("") => Ok(1),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "parameter \"page\" must be a positive number, got \"{v}\""
            ))
        }),
    }
}

/// A filter parameter; empty (an untouched form field) = absent.
fn filter<'a>(p: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    p.get(key).map(String::as_str).filter(|v| !v.is_empty())
}

fn slo_filter(engine: &Engine, p: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    match filter(p, "slo") {
        None => Ok(None),
        Some(name) => engine
            .slo_index(name)
            .map(Some)
            .ok_or_else(|| ApiError::NotFound(format!("unknown SLO \"{name}\""))),
    }
}

fn customer_filter(
    engine: &Engine,
    p: &HashMap<String, String>,
) -> Result<Option<CustomerIdx>, ApiError> {
    match filter(p, "customer") {
        None => Ok(None),
        Some(c) => engine
            .customers()
            .lookup(c)
            .map(Some)
            .ok_or_else(|| ApiError::NotFound(format!("unknown customer \"{c}\""))),
    }
}

/// The customers `caller` may see that the engine knows, by id.
fn visible_customers(engine: &Engine, caller: &Caller) -> Vec<CustomerIdx> {
    dto::report_customers(engine, caller.only())
}

/// One SLO's numbers over its own window for a scope.
pub struct SloRow {
    pub slo: usize,
    pub from: Millis,
    pub to: Millis,
    pub numbers: Numbers,
}

fn own_numbers(
    engine: &Engine,
    slo: usize,
    scope: &Scope,
    zone: &jiff::tz::TimeZone,
    now: Millis,
) -> SloRow {
    let (from, to) = engine.own_window(slo, zone, now);
    SloRow {
        slo,
        from,
        to,
        numbers: engine.numbers(slo, scope, from, to, now),
    }
}

/// Worst first: the least budget left (an exhausted budget with nothing
/// allowed counts as the worst), then breached before met; no data last.
fn badness(n: &Numbers) -> (u8, f64) {
    match (n.status, n.budget_remaining) {
        ("no_data", _) => (2, 0.0),
        (_, None) => (0, f64::NEG_INFINITY),
        (_, Some(b)) => (1, b),
    }
}

// ---------------------------------------------------------------------------
// Pages

async fn start(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, UiError> {
    page(&st, move |engine, now| {
        let frame = frame(engine, &caller, now, "overview");
        if caller.only().is_some() {
            let own = visible_customers(engine, &caller);
            return Ok(pages::own_customers(&frame, engine, &own).into_string());
        }
        let mut rows = Vec::new();
        for slo in 0..engine.settings().slos.len() {
            for g in engine.customers().groups() {
                let scope = Scope::Filter {
                    segment: Some(g.segment.to_string()),
                    timezone: Some(g.timezone.to_string()),
                };
                let zone = zone_of(&g.timezone);
                rows.push((g, own_numbers(engine, slo, &scope, &zone, now), zone));
            }
        }
        rows.sort_by(|a, b| {
            let (ka, kb) = (badness(&a.1.numbers), badness(&b.1.numbers));
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then_with(|| a.1.slo.cmp(&b.1.slo))
                .then_with(|| (&a.0.segment, &a.0.timezone).cmp(&(&b.0.segment, &b.0.timezone)))
        });
        Ok(pages::overview(&frame, engine, &rows).into_string())
    })
    .await
}

async fn customers(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Params,
) -> Result<Response, UiError> {
    page(&st, move |engine, now| {
        let page_no = page_param(&p)?;
        let segment = filter(&p, "segment");
        let timezone = filter(&p, "timezone");
        let q = filter(&p, "q").map(str::to_lowercase);
        let matching: Vec<CustomerIdx> = visible_customers(engine, &caller)
            .into_iter()
            .filter(|c| {
                let cust = engine.customers().get(*c);
                segment.is_none_or(|s| s == &*cust.segment)
                    && timezone.is_none_or(|z| z == &*cust.timezone)
                    && q.as_deref()
                        .is_none_or(|q| cust.id.to_lowercase().contains(q))
            })
            .collect();
        let shown: Vec<(CustomerIdx, Vec<SloRow>)> = matching
            .iter()
            .skip((page_no - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|&c| {
                let cust = engine.customers().get(c);
                let rows = (0..engine.settings().slos.len())
                    .map(|s| own_numbers(engine, s, &Scope::Customer(c), &cust.zone, now))
                    .collect();
                (c, rows)
            })
            .collect();
        let frame = frame(engine, &caller, now, "customers");
        Ok(pages::customers(&frame, engine, &p, matching.len(), page_no, &shown).into_string())
    })
    .await
}

/// A burn-down: the remaining budget over [window start, t) at instants up
/// to now, each from `Engine::numbers` like every other figure.
fn burn_down_points(
    engine: &Engine,
    row: &SloRow,
    scope: &Scope,
    now: Millis,
) -> Vec<chart::Point> {
    chart::sample_instants(row.from, row.to, now, CHART_STEPS)
        .into_iter()
        .filter_map(|t| {
            engine
                .numbers(row.slo, scope, row.from, t, now)
                .budget_remaining
                .map(|b| (t, b))
        })
        .collect()
}

async fn customer(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let warn_at = st.warn_at;
    page(&st, move |engine, now| {
        let c = engine
            .customers()
            .lookup(&id)
            .ok_or_else(|| ApiError::NotFound(format!("unknown customer \"{id}\"")))?;
        let cust = engine.customers().get(c);
        let scope = Scope::Customer(c);
        let slos: Vec<(SloRow, Vec<chart::Point>)> = (0..engine.settings().slos.len())
            .map(|s| {
                let row = own_numbers(engine, s, &scope, &cust.zone, now);
                let points = burn_down_points(engine, &row, &scope, now);
                (row, points)
            })
            .collect();
        let mut breaches = engine.breaches(None, Some(c), now);
        breaches.reverse();
        let open: Vec<_> = engine
            .open_clocks(now, warn_at)
            .into_iter()
            .filter(|o| {
                o.customer == c && matches!(o.state, ClockState::AtRisk | ClockState::Breached)
            })
            .collect();
        let frame = frame(engine, &caller, now, "customers");
        Ok(pages::customer(&frame, engine, c, &slos, &breaches, &open).into_string())
    })
    .await
}

async fn report(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Params,
) -> Result<Response, UiError> {
    page(&st, move |engine, now| {
        let page_no = page_param(&p)?;
        let month = match filter(&p, "month") {
            Some(_) => crate::api::month_param(&p)?,
            None => None,
        };
        let (y, m) = match month {
            Some(ym) => ym,
            None => {
                let utc = jiff::Timestamp::from_millisecond(now)
                    .map_err(|_| ApiError::Internal("now out of range".into()))?
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC);
                (utc.year(), utc.month())
            }
        };
        let all = visible_customers(engine, &caller);
        let shown: Vec<CustomerIdx> = all
            .iter()
            .skip((page_no - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .copied()
            .collect();
        let rows = dto::report_rows_for(engine, &shown, y, m, now);
        let frame = frame(engine, &caller, now, "report");
        Ok(pages::report(&frame, (y, m), all.len(), page_no, &rows).into_string())
    })
    .await
}

async fn breaches(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Params,
) -> Result<Response, UiError> {
    let warn_at = st.warn_at;
    page(&st, move |engine, now| {
        let page_no = page_param(&p)?;
        let slo = slo_filter(engine, &p)?;
        let customer = customer_filter(engine, &p)?;
        let segment = filter(&p, "segment");
        let visible = |c: &str| caller.may_read(c);
        // Only the page shown is derived; the rest is counted.
        let keep = |c: CustomerIdx| {
            let cust = engine.customers().get(c);
            segment.is_none_or(|s| s == &*cust.segment) && visible(&cust.id)
        };
        let q = BreachQuery {
            slo,
            customer,
            ..BreachQuery::default()
        };
        let (total, shown) = engine.breaches_newest_first(
            &q,
            &keep,
            (page_no - 1).saturating_mul(ROWS_PER_PAGE),
            ROWS_PER_PAGE,
            now,
        );
        let mut open: Vec<_> = engine
            .open_clocks(now, warn_at)
            .into_iter()
            .filter(|o| {
                let cust = engine.customers().get(o.customer);
                matches!(o.state, ClockState::AtRisk | ClockState::Breached)
                    && slo.is_none_or(|s| s == o.slo)
                    && customer.is_none_or(|c| c == o.customer)
                    && segment.is_none_or(|s| s == &*cust.segment)
                    && visible(&cust.id)
            })
            .collect();
        // Breached first, then the nearest to their target.
        open.sort_by(|a, b| {
            let fa = a.elapsed as f64 / a.target.max(1) as f64;
            let fb = b.elapsed as f64 / b.target.max(1) as f64;
            (b.state == ClockState::Breached)
                .cmp(&(a.state == ClockState::Breached))
                .then(fb.total_cmp(&fa))
        });
        let open_total = open.len();
        open.truncate(ROWS_PER_PAGE);
        let segments: BTreeSet<String> = visible_customers(engine, &caller)
            .iter()
            .map(|c| engine.customers().get(*c).segment.to_string())
            .collect();
        let frame = frame(engine, &caller, now, "breaches");
        Ok(pages::breaches(
            &frame,
            engine,
            &p,
            &segments,
            (total, page_no, &shown),
            (open_total, &open),
        )
        .into_string())
    })
    .await
}

async fn exclusions(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, UiError> {
    page(&st, move |engine, now| {
        let frame = frame(engine, &caller, now, "exclusions");
        Ok(pages::exclusions(&frame, engine).into_string())
    })
    .await
}

async fn audit(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, UiError> {
    page(&st, move |engine, now| {
        let frame = frame(engine, &caller, now, "audit");
        Ok(pages::audit(&frame, engine).into_string())
    })
    .await
}

/// A list field of the form: comma- or line-separated; empty = absent.
fn list_field(v: Option<&String>) -> Option<Vec<String>> {
    let items: Vec<String> = v?
        .split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    (!items.is_empty()).then_some(items)
}

/// The add form into the API's request body, so both take one validation.
fn exclusion_request(fields: &[(String, String)]) -> ExclusionRequest {
    let one = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let slos: Vec<String> = fields
        .iter()
        .filter(|(n, v)| n == "slos" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    ExclusionRequest {
        name: one("name").unwrap_or_default().trim().to_string(),
        from: one("from").unwrap_or_default().trim().to_string(),
        to: one("to").unwrap_or_default().trim().to_string(),
        slos: (!slos.is_empty()).then_some(slos),
        customers: list_field(one("customers").as_ref()),
        segments: list_field(one("segments").as_ref()),
        reason: one("reason").unwrap_or_default(),
        author: one("author").unwrap_or_default(),
    }
}

async fn add_exclusion(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let req = exclusion_request(&fields);
    let now = st.clock.now();
    let who = caller.name().to_string();
    let r = mutate(&st, move |engine| {
        let (exclusion, author) = req.validate(engine)?;
        Ok(engine.add_exclusion_by(exclusion, author, who, now))
    })
    .await?;
    tracing::info!(id = r.id, who = %caller.name(), author = %r.author, "run-time exclusion added");
    Ok(Redirect::to("/exclusions").into_response())
}

async fn withdraw_exclusion(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::BadRequest(format!("exclusion id must be a number, got \"{id}\""))
    })?;
    let who = caller.name().to_string();
    let now = st.clock.now();
    mutate(&st, move |engine| {
        engine
            .remove_exclusion(id, who, now)
            .ok_or_else(|| ApiError::NotFound(format!("unknown exclusion {id}")))
    })
    .await?;
    tracing::info!(id, who = %caller.name(), "run-time exclusion withdrawn");
    Ok(Redirect::to("/exclusions").into_response())
}
