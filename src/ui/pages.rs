//! The pages' HTML (maud: every value is escaped; URLs are percent-encoded
//! here). Numbers are shown rounded and carried exactly in `data-value`
//! attributes (the API's value), so a reader or a test can check them.

use std::collections::{BTreeSet, HashMap};

use axum::http::StatusCode;
use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::chart::{self, Point};
use super::{Frame, SloRow, PAGE_SIZE, ROWS_PER_PAGE, STYLE_PATH};
use crate::api::dto::ReportRow;
use crate::engine::customers::{CustomerIdx, Group};
use crate::engine::query::{Breach, Numbers, OpenClock};
use crate::engine::Engine;
use crate::model::slo::SloWindow;
use crate::model::time::{format_duration, format_rfc3339, Millis};

/// Everything but unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `/customers/<id>`, the id percent-encoded.
pub fn customer_href(id: &str) -> String {
    format!("/customers/{}", utf8_percent_encode(id, SEGMENT))
}

/// `path?k=v&…` with the values encoded; empty values are left out.
fn href(path: &str, params: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if kept.is_empty() {
        return path.to_string();
    }
    match serde_urlencoded::to_string(&kept) {
        Ok(q) => format!("{path}?{q}"),
        Err(_) => path.to_string(),
    }
}

fn exact(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_string(), |x| x.to_string())
}

fn percent(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(
        || "—".to_string(),
        |x| format!("{:.*}%", decimals, x * 100.0),
    )
}

/// An instant in `zone`, to the minute.
fn at(ms: Millis, zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned_datetime(zone.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_else(|_| format_rfc3339(ms))
}

fn utc(ms: Millis) -> String {
    at(ms, &jiff::tz::TimeZone::UTC)
}

/// A duration to the second.
fn seconds(s: f64) -> String {
    format_duration(s.round() as Millis * 1000)
}

fn status(s: &str) -> Markup {
    html! { span class={"status " (s)} { (s.replace('_', " ")) } }
}

fn budget_bar(b: Option<f64>) -> Markup {
    let (width, class) = match b {
        None => (100.0, "out"),
        Some(x) if x < 0.0 => (100.0, "out"),
        Some(x) if x < 0.25 => (x * 100.0, "low"),
        Some(x) => (x.min(1.0) * 100.0, ""),
    };
    html! {
        span.bar aria-hidden="true" { span class=(class) style=(format!("width:{width:.0}%")) {} }
    }
}

/// The cells of one SLO's numbers: objective, attainment, budget, status.
fn number_cells(n: &Numbers) -> Markup {
    html! {
        td.num data-field="objective" data-value=(n.objective) { (percent(Some(n.objective), 2)) }
        td.num data-field="total" data-value=(n.total) { (n.total) }
        td.num data-field="attainment" data-value=(exact(n.attainment)) { (percent(n.attainment, 3)) }
        td.num data-field="budget_remaining" data-value=(exact(n.budget_remaining)) {
            (percent(n.budget_remaining, 1)) (budget_bar(n.budget_remaining))
        }
        td data-field="status" data-value=(n.status) { (status(n.status)) }
    }
}

fn window_label(engine: &Engine, slo: usize) -> String {
    match engine.slo(slo).window {
        SloWindow::Rolling(ms) => format!("rolling {}", format_duration(ms)),
        SloWindow::Month => "calendar month".to_string(),
    }
}

const NAV: [(&str, &str, &str, bool); 6] = [
    ("overview", "/", "Overview", true),
    ("customers", "/customers", "Customers", true),
    ("report", "/report", "Monthly report", true),
    ("breaches", "/breaches", "Breaches & at risk", true),
    ("exclusions", "/exclusions", "Exclusions", false),
    ("audit", "/audit", "Audit log", false),
];

pub fn layout(frame: &Frame<'_>, title: &str, body: Markup) -> Markup {
    let scoped = frame.caller.only().is_some();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · slastream" }
                link rel="stylesheet" href=(STYLE_PATH);
            }
            body {
                header {
                    a.brand href="/" { "slastream" }
                    nav {
                        @for (key, path, label, for_customers) in NAV {
                            @if for_customers || !scoped {
                                @if key == frame.current {
                                    a href=(path) aria-current="page" { (label) }
                                } @else {
                                    a href=(path) { (label) }
                                }
                            }
                        }
                    }
                    span.asof {
                        "now " time datetime=(format_rfc3339(frame.now)) { (utc(frame.now)) }
                        " · events up to "
                        @match frame.watermark {
                            Some(w) => time datetime=(format_rfc3339(w)) { (utc(w)) },
                            None => "none yet",
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn error(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · slastream" }
                link rel="stylesheet" href=(STYLE_PATH);
            }
            body {
                header { a.brand href="/" { "slastream" } }
                main {
                    h1 { (status.as_u16()) " " (title) }
                    p.error { (message) }
                    p { a href="/" { "Back to the overview" } }
                }
            }
        }
    }
}

fn pager(total: usize, per_page: usize, page_no: usize, link: impl Fn(usize) -> String) -> Markup {
    let pages = total.div_ceil(per_page).max(1);
    html! {
        @if pages > 1 {
            nav.pager aria-label="pages" {
                @if page_no > 1 { a href=(link(page_no - 1)) rel="prev" { "← previous" } }
                "page " (page_no.min(pages)) " of " (pages)
                @if page_no < pages { " " a href=(link(page_no + 1)) rel="next" { "next →" } }
            }
        }
    }
}

/// The start page of a customer token: its customers.
pub fn own_customers(frame: &Frame<'_>, engine: &Engine, own: &[CustomerIdx]) -> Markup {
    layout(
        frame,
        "Your service levels",
        html! {
            h1 { "Your service levels" }
            @if own.is_empty() {
                p.note { "No data for your customers yet." }
            } @else {
                ul {
                    @for c in own {
                        @let cust = engine.customers().get(*c);
                        li { a href=(customer_href(&cust.id)) { (cust.id.as_ref()) } }
                    }
                }
            }
        },
    )
}

pub fn overview(
    frame: &Frame<'_>,
    engine: &Engine,
    rows: &[(&Group, SloRow, jiff::tz::TimeZone)],
) -> Markup {
    layout(
        frame,
        "Overview",
        html! {
            h1 { "Service levels by segment and time zone" }
            p.note { "Each SLO over its own window ending now, worst remaining budget first." }
            @if rows.is_empty() {
                p.note { "No customers yet." }
            } @else {
                table id="overview" {
                    thead { tr {
                        th { "SLO" } th { "Segment" } th { "Time zone" } th { "Window" }
                        th.num { "Objective" } th.num { "Total" } th.num { "Attainment" }
                        th.num { "Budget left" } th { "Status" } th { "" }
                    } }
                    tbody {
                        @for (g, row, zone) in rows {
                            @let name = &engine.slo(row.slo).name;
                            tr data-slo=(name) data-segment=(g.segment.as_ref()) data-timezone=(g.timezone.as_ref())
                                data-from=(format_rfc3339(row.from)) data-to=(format_rfc3339(row.to)) {
                                td { (name) }
                                td { (g.segment.as_ref()) }
                                td { (g.timezone.as_ref()) }
                                td { (window_label(engine, row.slo)) br;
                                     small { (at(row.from, zone)) " – " (at(row.to, zone)) } }
                                (number_cells(&row.numbers))
                                td {
                                    a href=(href("/customers", &[("segment", &g.segment), ("timezone", &g.timezone)])) { "customers" }
                                    " · "
                                    a href=(href("/breaches", &[("slo", name), ("segment", &g.segment)])) { "breaches" }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn customers(
    frame: &Frame<'_>,
    engine: &Engine,
    p: &HashMap<String, String>,
    total: usize,
    page_no: usize,
    shown: &[(CustomerIdx, Vec<SloRow>)],
) -> Markup {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let link = |n: usize| {
        let n = n.to_string();
        href(
            "/customers",
            &[
                ("segment", get("segment")),
                ("timezone", get("timezone")),
                ("q", get("q")),
                ("page", &n),
            ],
        )
    };
    let slos = &engine.settings().slos;
    layout(
        frame,
        "Customers",
        html! {
            h1 { "Customers" }
            form.filters method="get" action="/customers" {
                label { "Customer id contains" input type="search" name="q" value=(get("q")); }
                label { "Segment" input type="text" name="segment" value=(get("segment")); }
                label { "Time zone" input type="text" name="timezone" value=(get("timezone")); }
                button type="submit" { "Filter" }
            }
            p.note { (total) " customers; each SLO over its own window ending now." }
            table id="customers" {
                thead { tr {
                    th { "Customer" } th { "Segment" } th { "Time zone" }
                    @for s in slos { th { (s.name) } }
                } }
                tbody {
                    @for (c, rows) in shown {
                        @let cust = engine.customers().get(*c);
                        tr data-customer=(cust.id.as_ref()) {
                            td { a href=(customer_href(&cust.id)) { (cust.id.as_ref()) } }
                            td { (cust.segment.as_ref()) }
                            td { (cust.timezone.as_ref()) }
                            @for row in rows {
                                td data-slo=(slos[row.slo].name) data-value=(exact(row.numbers.attainment)) {
                                    (percent(row.numbers.attainment, 2)) " " (status(row.numbers.status))
                                }
                            }
                        }
                    }
                }
            }
            (pager(total, PAGE_SIZE, page_no, link))
        },
    )
}

fn breach_rows(breaches: &[Breach], with_customer: bool) -> Markup {
    html! {
        table.breaches {
            thead { tr {
                th { "Breached at" } th { "SLO" } th { "Kind" } th { "Id" }
                @if with_customer { th { "Customer" } th { "Segment" } }
                th { "Level" } th.num { "Target" } th.num { "Elapsed" } th { "Stopped" }
            } }
            tbody {
                @for b in breaches {
                    tr data-slo=(b.slo) data-id=(b.id) data-customer=(b.customer)
                        data-breached-at=(format_rfc3339(b.breached_at)) {
                        td { (utc(b.breached_at)) }
                        td { (b.slo) }
                        td { (b.kind) }
                        td { (b.id) }
                        @if with_customer {
                            td { a href=(customer_href(&b.customer)) { (b.customer) } }
                            td { (b.segment) }
                        }
                        td { (b.priority.or(b.severity).unwrap_or("")) }
                        td.num data-value=(b.target_seconds) { (seconds(b.target_seconds)) }
                        td.num data-value=(b.elapsed_seconds) { (seconds(b.elapsed_seconds)) }
                        td { @match b.stopped_at { Some(s) => (utc(s)), None => "still open" } }
                    }
                }
            }
        }
    }
}

fn open_rows(engine: &Engine, open: &[OpenClock], with_customer: bool) -> Markup {
    html! {
        table.open {
            thead { tr {
                th { "State" } th { "SLO" } th { "Kind" } th { "Id" }
                @if with_customer { th { "Customer" } }
                th { "Level" } th { "Opened" } th.num { "Elapsed" } th.num { "Target" } th { "Breach at" }
            } }
            tbody {
                @for o in open {
                    @let cust = engine.customers().get(o.customer);
                    tr data-slo=(engine.slo(o.slo).name) data-id=(o.id) data-state=(o.state.label()) {
                        td { (status(o.state.label())) }
                        td { (engine.slo(o.slo).name) }
                        td { (o.kind) }
                        td { (o.id) }
                        @if with_customer { td { a href=(customer_href(&cust.id)) { (cust.id.as_ref()) } } }
                        td { (o.level) }
                        td { (utc(o.started_at)) }
                        td.num { (format_duration(o.elapsed / 1000 * 1000)) }
                        td.num { (format_duration(o.target)) }
                        td { @match o.breach_at { Some(b) => (utc(b)), None => "—" } }
                    }
                }
            }
        }
    }
}

pub fn customer(
    frame: &Frame<'_>,
    engine: &Engine,
    c: CustomerIdx,
    slos: &[(SloRow, Vec<Point>)],
    breaches: &[Breach],
    open: &[OpenClock],
) -> Markup {
    let cust = engine.customers().get(c);
    let zone = &cust.zone;
    let title = format!("Customer {}", cust.id);
    layout(
        frame,
        &title,
        html! {
            h1 { (title) }
            p.note { "Segment " strong { (cust.segment.as_ref()) } ", time zone " strong { (cust.timezone.as_ref()) }
                     ". Each SLO over its own window ending now; times in the customer's zone." }
            table id="slos" {
                thead { tr {
                    th { "SLO" } th { "Window" } th.num { "Objective" } th.num { "Total" }
                    th.num { "Attainment" } th.num { "Budget left" } th { "Status" } th { "Budget burn-down" }
                } }
                tbody {
                    @for (row, points) in slos {
                        @let def = engine.slo(row.slo);
                        tr data-slo=(def.name) data-from=(format_rfc3339(row.from)) data-to=(format_rfc3339(row.to)) {
                            td { (def.name) br; small { (def.description) } }
                            td { (window_label(engine, row.slo)) br;
                                 small { (at(row.from, zone)) " – " (at(row.to, zone)) } }
                            (number_cells(&row.numbers))
                            td { (chart::burn_down(&format!("{}: remaining error budget over the window", def.name), row.from, row.to, points)) }
                        }
                    }
                }
            }
            h2 { "Open tickets and incidents at risk or breached" }
            @if open.is_empty() { p.note { "None." } } @else { (open_rows(engine, open, false)) }
            h2 { "Breaches" }
            @if breaches.is_empty() {
                p.note { "None." }
            } @else {
                @let shown = &breaches[..breaches.len().min(ROWS_PER_PAGE)];
                p.note { (breaches.len()) " in all, newest first"
                    @if breaches.len() > shown.len() {
                        "; " a href=(href("/breaches", &[("customer", &cust.id)])) { "all of them" }
                    }
                    "." }
                (breach_rows(shown, false))
            }
            p { a href=(href("/report", &[])) { "Monthly report" } " · "
                a href=(href("/breaches", &[("customer", &cust.id)])) { "breaches of this customer" } }
        },
    )
}

pub fn report(
    frame: &Frame<'_>,
    (y, m): (i16, i8),
    customers: usize,
    page_no: usize,
    rows: &[ReportRow],
) -> Markup {
    let month = format!("{y:04}-{m:02}");
    let link = |n: usize| href("/report", &[("month", &month), ("page", &n.to_string())]);
    layout(
        frame,
        &format!("Report {month}"),
        html! {
            h1 { "Monthly report " (month) }
            form.filters method="get" action="/report" {
                label { "Month" input type="month" name="month" value=(month) pattern="[0-9]{4}-[0-9]{2}"; }
                button type="submit" { "Show" }
                a href=(href("/api/v1/report", &[("month", &month), ("format", "csv")])) download=(format!("slastream-report-{month}.csv")) {
                    "Download CSV (all rows)" }
            }
            p.note { "Every customer × SLO for the month in the customer's own time zone; "
                     (customers) " customers, " (PAGE_SIZE) " per page." }
            table id="report" {
                thead { tr {
                    th { "Customer" } th { "Segment" } th { "Time zone" } th { "SLO" }
                    th.num { "Objective" } th.num { "Total" } th.num { "Good" } th.num { "Bad" }
                    th.num { "Attainment" } th.num { "Budget left" } th { "Status" } th.num { "Credit" }
                } }
                tbody {
                    @for r in rows {
                        tr data-customer=(r.customer) data-slo=(r.slo) {
                            td { a href=(customer_href(&r.customer)) { (r.customer) } }
                            td { (r.segment) } td { (r.timezone) } td { (r.slo) }
                            td.num data-field="objective" data-value=(r.objective) { (percent(Some(r.objective), 2)) }
                            td.num data-field="total" data-value=(r.total) { (r.total) }
                            td.num data-field="good" data-value=(r.good) { (r.good) }
                            td.num data-field="bad" data-value=(r.bad) { (r.bad) }
                            td.num data-field="attainment" data-value=(r.attainment) { (percent(r.attainment.as_f64(), 3)) }
                            td.num data-field="budget_remaining" data-value=(r.budget_remaining) { (percent(r.budget_remaining.as_f64(), 1)) }
                            td data-field="status" { (status(r.status)) }
                            td.num data-field="credit_percent" data-value=(r.credit_percent) { (r.credit_percent) "%" }
                        }
                    }
                }
            }
            (pager(customers, PAGE_SIZE, page_no, link))
        },
    )
}

pub fn breaches(
    frame: &Frame<'_>,
    engine: &Engine,
    p: &HashMap<String, String>,
    segments: &BTreeSet<String>,
    (total, page_no, shown): (usize, usize, &[Breach]),
    (open_total, open): (usize, &[OpenClock]),
) -> Markup {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let link = |n: usize| {
        let n = n.to_string();
        href(
            "/breaches",
            &[
                ("slo", get("slo")),
                ("segment", get("segment")),
                ("customer", get("customer")),
                ("page", &n),
            ],
        )
    };
    let own = frame.caller.only();
    layout(
        frame,
        "Breaches",
        html! {
            h1 { "Breaches and clocks at risk" }
            form.filters method="get" action="/breaches" {
                label { "SLO" select name="slo" {
                    option value="" { "any" }
                    @for s in &engine.settings().slos {
                        @if s.indicator.is_ticket() || s.indicator.is_incident_clock() {
                            option value=(s.name) selected[get("slo") == s.name] { (s.name) }
                        }
                    }
                } }
                label { "Segment" select name="segment" {
                    option value="" { "any" }
                    @for g in segments { option value=(g) selected[get("segment") == g] { (g) } }
                } }
                @match own {
                    Some(list) => label { "Customer" select name="customer" {
                        option value="" { "any of yours" }
                        @for c in list { option value=(c) selected[get("customer") == c] { (c) } }
                    } },
                    None => label { "Customer" input type="text" name="customer" value=(get("customer")); },
                }
                button type="submit" { "Filter" }
            }
            h2 { "Open tickets and incidents at risk or breached" }
            p.note { (open_total) " open"
                @if open_total > open.len() { ", the " (open.len()) " nearest to or past their target shown" } "." }
            @if !open.is_empty() { (open_rows(engine, open, true)) }
            h2 { "Breaches" }
            p.note { (total) " breaches, newest first." }
            @if !shown.is_empty() { (breach_rows(shown, true)) }
            (pager(total, ROWS_PER_PAGE, page_no, link))
        },
    )
}

fn exclusion_summary(x: &crate::model::slo::Exclusion) -> Markup {
    let list = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map_or_else(|| "all".to_string(), |l| l.join(", "))
    };
    html! {
        td { (x.name) }
        td { (utc(x.from)) } td { (utc(x.to)) }
        td { (list(&x.slos)) } td { (list(&x.customers)) } td { (list(&x.segments)) }
        td { (x.reason) }
    }
}

pub fn exclusions(frame: &Frame<'_>, engine: &Engine) -> Markup {
    let runtime = engine.runtime_exclusions();
    let configured = &engine.settings().exclusions;
    layout(
        frame,
        "Exclusions",
        html! {
            h1 { "Exclusions" }
            p.note { "An exclusion removes its time and probes from the SLOs it names, retroactively. "
                     "Adding or withdrawing one needs an admin token, typed into the form." }
            h2 { "Added at run time" }
            @if runtime.is_empty() { p.note { "None." } } @else {
                table id="runtime" {
                    thead { tr {
                        th { "Id" } th { "Name" } th { "From" } th { "To" } th { "SLOs" } th { "Customers" }
                        th { "Segments" } th { "Reason" } th { "Author" } th { "Added" } th { "Withdraw" }
                    } }
                    tbody {
                        @for r in runtime {
                            tr data-id=(r.id) {
                                td { (r.id) }
                                (exclusion_summary(&r.exclusion))
                                td { (r.author) }
                                td { (utc(r.created_at)) }
                                td {
                                    form.inline method="post" action=(format!("/exclusions/{}/withdraw", r.id)) {
                                        input type="password" name="token" placeholder="admin token" required autocomplete="off"
                                            aria-label="admin token";
                                        button type="submit" { "Withdraw" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Add an exclusion" }
            form.edit method="post" action="/exclusions" {
                label { "Name" input type="text" name="name" required; }
                label { "From (RFC 3339, whole minute)" input type="text" name="from" required placeholder="2026-11-03T00:00:00Z"; }
                label { "To (RFC 3339, whole minute)" input type="text" name="to" required placeholder="2026-11-03T06:00:00Z"; }
                label { "SLOs (none selected = all)" select name="slos" multiple size="4" {
                    @for s in &engine.settings().slos { option value=(s.name) { (s.name) } }
                } }
                label { "Customers (comma-separated; empty = all)" input type="text" name="customers"; }
                label { "Segments (comma-separated; empty = all)" input type="text" name="segments"; }
                label { "Reason" input type="text" name="reason"; }
                label { "Author" input type="text" name="author" required; }
                label { "Admin token" input type="password" name="token" required autocomplete="off"; }
                div { button type="submit" { "Add exclusion" } }
            }
            h2 { "From the configuration" }
            @if configured.is_empty() { p.note { "None." } } @else {
                table id="configured" {
                    thead { tr {
                        th { "Name" } th { "From" } th { "To" } th { "SLOs" } th { "Customers" } th { "Segments" } th { "Reason" }
                    } }
                    tbody { @for x in configured { tr { (exclusion_summary(x)) } } }
                }
            }
        },
    )
}

pub fn audit(frame: &Frame<'_>, engine: &Engine) -> Markup {
    let entries = engine.audit();
    let short = |r: &Option<crate::engine::RuntimeExclusion>| match r {
        Some(r) => format!(
            "#{} {} [{} – {})",
            r.id,
            r.exclusion.name,
            utc(r.exclusion.from),
            utc(r.exclusion.to)
        ),
        None => String::new(),
    };
    layout(
        frame,
        "Audit log",
        html! {
            h1 { "Audit log" }
            p.note { "Every change of a run-time exclusion, newest first; who is the name of the token used." }
            @if entries.is_empty() { p.note { "No changes yet." } } @else {
                table id="audit" {
                    thead { tr { th { "#" } th { "When" } th { "Who" } th { "What" } th { "Before" } th { "After" } } }
                    tbody {
                        @for a in entries.iter().rev() {
                            tr data-seq=(a.seq) {
                                td { (a.seq) } td { (utc(a.at)) } td { (a.who) } td { (a.action) }
                                td { (short(&a.before)) } td { (short(&a.after)) }
                            }
                        }
                    }
                }
            }
        },
    )
}
