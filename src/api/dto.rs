//! JSON shapes of the API (SPEC §4). Whole numbers are written as integers,
//! everything else as floats; instants as RFC 3339 UTC.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ApiError;
use crate::engine::customers::CustomerIdx;
use crate::engine::query::{month_window, Breach, BreachKey, Numbers, Scope};
use crate::engine::{Engine, RuntimeExclusion};
use crate::model::slo::{
    ClockKind, Exclusion, Indicator, SloDef, SloTerms, SloWindow, Targets, VersionAt, PRIORITIES,
    SEVERITIES,
};
use crate::model::time::{format_duration, format_rfc3339, parse_rfc3339, Millis, MINUTE};

/// A JSON number: an integer when `x` is whole, else a float.
pub fn num(x: f64) -> Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn opt_num(x: Option<f64>) -> Value {
    x.map(num).unwrap_or(Value::Null)
}

fn targets_json(indicator: Indicator, t: &Targets) -> Value {
    let names = if indicator.is_ticket() {
        PRIORITIES
    } else {
        SEVERITIES
    };
    let mut m = serde_json::Map::new();
    for (i, v) in t.iter().enumerate() {
        if let Some(ms) = v {
            m.insert(names[i].to_string(), json!(format_duration(*ms)));
        }
    }
    Value::Object(m)
}

/// The versioned keys of one version of `s` (SPEC §2.3), into `o`.
fn terms_into(o: &mut serde_json::Map<String, Value>, s: &SloDef, terms: &SloTerms) {
    o.insert("objective".into(), json!(terms.objective));
    o.insert("segment_objectives".into(), json!(terms.segment_objectives));
    if let Some(t) = terms.threshold_ms {
        o.insert("threshold_ms".into(), num(t));
    }
    if s.indicator.is_ticket() || s.indicator.is_incident_clock() {
        o.insert("targets".into(), targets_json(s.indicator, &terms.targets));
        let seg: serde_json::Map<String, Value> = terms
            .segment_targets
            .iter()
            .map(|(k, t)| (k.clone(), targets_json(s.indicator, t)))
            .collect();
        o.insert("segment_targets".into(), Value::Object(seg));
    }
}

/// Every version of `s`, oldest first: its span [from, until) (`null` =
/// unbounded), the change that ended it, and its terms.
pub fn history_json(s: &SloDef) -> Value {
    let spans = s.version_spans();
    let mut out = Vec::with_capacity(spans.len());
    for (i, (from, until)) in spans.into_iter().enumerate() {
        let (terms, change) = match s.history.get(i) {
            Some(v) => (v.terms.clone(), Some(v.change.as_str())),
            None => (s.newest_terms(), None),
        };
        let mut o = serde_json::Map::new();
        o.insert("from".into(), json!(from.map(format_rfc3339)));
        o.insert("until".into(), json!(until.map(format_rfc3339)));
        o.insert("change".into(), json!(change));
        terms_into(&mut o, s, &terms);
        out.push(Value::Object(o));
    }
    Value::Array(out)
}

/// An audit entry `slo_definition`: the SLO as the state last ran with it
/// and as it starts now (`null` for an added or removed SLO).
pub fn definition_change_json(d: &crate::engine::versions::DefinitionChange) -> Value {
    json!({
        "seq": d.seq,
        "when": format_rfc3339(d.at),
        "who": "configuration",
        "what": "slo_definition",
        "action": d.action(),
        "slo": d.slo,
        "retroactive": d.retroactive,
        "summary": d.describe(),
        "before": d.before.as_ref().map(|s| slo_json(s, d.at)),
        "after": d.after.as_ref().map(|s| slo_json(s, d.at)),
    })
}

/// An SLO with the terms in force at `at`, its version's span, and its
/// whole history.
pub fn slo_json(s: &SloDef, at: Millis) -> Value {
    let mut v = json!({
        "name": s.name,
        "description": s.description,
        "indicator": s.indicator.as_str(),
        "window": match s.window { SloWindow::Rolling(ms) => format_duration(ms), SloWindow::Month => "month".into() },
        "unit": s.indicator.unit(),
        "filter": s.filter,
    });
    let o = v.as_object_mut().expect("json object literal");
    terms_into(o, s, &s.terms_at(at));
    let (from, until) = match s.version_at(at) {
        VersionAt::History(i) => (
            i.checked_sub(1).map(|p| s.history[p].until),
            Some(s.history[i].until),
        ),
        VersionAt::Newest => (s.history.last().map(|v| v.until), None),
    };
    o.insert(
        "in_force".into(),
        json!({"from": from.map(format_rfc3339), "until": until.map(format_rfc3339)}),
    );
    if s.indicator.is_ticket() || s.indicator.is_incident_clock() {
        o.insert(
            "clock".into(),
            json!(match s.clock {
                ClockKind::Business => "business",
                ClockKind::AllDay => "24x7",
            }),
        );
    }
    if s.indicator.is_ticket() {
        o.insert("pausable".into(), json!(s.pausable));
    }
    if s.indicator == Indicator::IncidentAvailability {
        let sev: Vec<&str> = s
            .severities
            .iter()
            .map(|l| SEVERITIES[*l as usize])
            .collect();
        o.insert("severities".into(), json!(sev));
    }
    o.insert("history".into(), history_json(s));
    v
}

#[allow(clippy::too_many_arguments)]
pub fn compliance_json(
    engine: &Engine,
    slo: usize,
    scope: &Scope,
    from: Millis,
    to: Millis,
    n: &Numbers,
    exhaustion_seconds: Option<f64>,
) -> Value {
    let def = engine.slo(slo);
    let scope_json = match scope {
        Scope::Customer(c) => {
            let c = engine.customers().get(*c);
            json!({"customer": &*c.id, "segment": &*c.segment, "timezone": &*c.timezone})
        }
        Scope::Filter { segment, timezone } => {
            let mut m = serde_json::Map::new();
            if let Some(s) = segment {
                m.insert("segment".into(), json!(s));
            }
            if let Some(z) = timezone {
                m.insert("timezone".into(), json!(z));
            }
            Value::Object(m)
        }
    };
    json!({
        "slo": def.name,
        "scope": scope_json,
        "window": {"from": format_rfc3339(from), "to": format_rfc3339(to)},
        "objective": n.objective,
        "unit": def.indicator.unit(),
        "total": num(n.total),
        "good": num(n.good),
        "bad": num(n.bad),
        "attainment": opt_num(n.attainment),
        "allowed_bad": n.allowed_bad,
        "budget_consumed": opt_num(n.budget_consumed),
        "budget_remaining": opt_num(n.budget_remaining),
        "status": n.status,
        "excluded_seconds": num(n.excluded_seconds),
        "exhaustion_seconds": opt_num(exhaustion_seconds),
    })
}

pub fn breach_json(b: &Breach) -> Value {
    let mut v = json!({
        "slo": b.slo,
        "kind": b.kind,
        "id": b.id,
        "customer": b.customer,
        "segment": b.segment,
        "timezone": b.timezone,
        "target_seconds": num(b.target_seconds),
        "elapsed_seconds": num(b.elapsed_seconds),
        "breached_at": format_rfc3339(b.breached_at),
        "stopped_at": b.stopped_at.map(format_rfc3339),
    });
    let o = v.as_object_mut().expect("json object literal");
    if let Some(p) = b.priority {
        o.insert("priority".into(), json!(p));
    }
    if let Some(s) = b.severity {
        o.insert("severity".into(), json!(s));
    }
    v
}

/// One row of the monthly report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub customer: String,
    pub segment: String,
    pub timezone: String,
    pub slo: String,
    pub objective: f64,
    pub unit: &'static str,
    pub total: Value,
    pub good: Value,
    pub bad: Value,
    pub attainment: Value,
    pub budget_remaining: Value,
    pub status: &'static str,
    pub credit_percent: Value,
}

/// Every known customer × SLO for the month, each in the customer's zone;
/// with `only`, just those customers' rows.
pub fn report_rows(
    engine: &Engine,
    year: i16,
    month: i8,
    now: Millis,
    only: Option<&BTreeSet<String>>,
) -> Vec<ReportRow> {
    report_rows_for(engine, &report_customers(engine, only), year, month, now)
}

/// The customers of the report in its order (by id), limited to `only`.
pub fn report_customers(engine: &Engine, only: Option<&BTreeSet<String>>) -> Vec<CustomerIdx> {
    let mut customers: Vec<_> = engine
        .customers()
        .iter()
        .filter(|(_, c)| only.is_none_or(|set| set.contains(&*c.id)))
        .map(|(idx, c)| (c.id.clone(), idx))
        .collect();
    customers.sort();
    customers.into_iter().map(|(_, idx)| idx).collect()
}

/// The report rows of `customers`, in that order, each customer's SLOs in
/// configuration order.
pub fn report_rows_for(
    engine: &Engine,
    customers: &[CustomerIdx],
    year: i16,
    month: i8,
    now: Millis,
) -> Vec<ReportRow> {
    let mut rows = Vec::new();
    for &idx in customers {
        let c = engine.customers().get(idx);
        let Some((from, to)) = month_window(year, month, &c.zone) else {
            continue;
        };
        for (s, def) in engine.settings().slos.iter().enumerate() {
            let n = engine.numbers(s, &Scope::Customer(idx), from, to, now);
            rows.push(ReportRow {
                customer: c.id.to_string(),
                segment: c.segment.to_string(),
                timezone: c.timezone.to_string(),
                slo: def.name.clone(),
                objective: n.objective,
                unit: def.indicator.unit(),
                total: num(n.total),
                good: num(n.good),
                bad: num(n.bad),
                attainment: opt_num(n.attainment),
                budget_remaining: opt_num(n.budget_remaining),
                status: n.status,
                credit_percent: num(engine.credit_percent(s, n.attainment)),
            });
        }
    }
    rows
}

/// One CSV field. A value a spreadsheet would read as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'` so it stays text;
/// then it is quoted when it holds a separator, quote or line break.
fn csv_field(v: &str) -> String {
    let v: std::borrow::Cow<'_, str> = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}").into()
    } else {
        v.into()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.into_owned()
    }
}

#[cfg(test)]
mod csv_field_tests {
    use super::csv_field;

    #[test]
    fn formulas_are_defused_and_quoted_as_needed() {
        assert_eq!(csv_field("acme"), "acme");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+2"), "'=1+2");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://evil\",\"x\")"),
            "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""
        );
        // Only the first character matters.
        assert_eq!(csv_field("a=1"), "a=1");
        assert_eq!(csv_field("x-1"), "x-1");
        assert_eq!(csv_field(""), "");
    }
}

fn csv_value(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => csv_field(s),
        other => other.to_string(),
    }
}

pub const REPORT_COLUMNS: [&str; 13] = [
    "customer",
    "segment",
    "timezone",
    "slo",
    "objective",
    "unit",
    "total",
    "good",
    "bad",
    "attainment",
    "budget_remaining",
    "status",
    "credit_percent",
];

/// One CSV line of the report.
fn report_csv_line(r: &ReportRow) -> String {
    let fields = [
        csv_field(&r.customer),
        csv_field(&r.segment),
        csv_field(&r.timezone),
        csv_field(&r.slo),
        num(r.objective).to_string(),
        r.unit.to_string(),
        csv_value(&r.total),
        csv_value(&r.good),
        csv_value(&r.bad),
        csv_value(&r.attainment),
        csv_value(&r.budget_remaining),
        r.status.to_string(),
        csv_value(&r.credit_percent),
    ];
    let mut line = fields.join(",");
    line.push('\n');
    line
}

/// The report as CSV (header line, then one line per row) into `out`.
pub fn write_report_csv(out: &mut impl std::io::Write, rows: &[ReportRow]) -> std::io::Result<()> {
    out.write_all(REPORT_COLUMNS.join(",").as_bytes())?;
    out.write_all(b"\n")?;
    for r in rows {
        out.write_all(report_csv_line(r).as_bytes())?;
    }
    Ok(())
}

/// The report as JSON (`{"month", "rows", "as_of"}`) into `out`, encoded
/// straight from the rows as it is written.
pub fn write_report_json(
    out: &mut impl std::io::Write,
    month: &str,
    rows: &[ReportRow],
    as_of: &Value,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Report<'a> {
        month: &'a str,
        rows: &'a [ReportRow],
        as_of: &'a Value,
    }
    serde_json::to_writer(out, &Report { month, rows, as_of }).map_err(std::io::Error::from)
}

/// The opaque cursor of a page of breaches: where the next page starts.
pub fn encode_cursor(k: &BreachKey) -> String {
    use base64::Engine as _;
    let json = serde_json::to_vec(k).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// A cursor `encode_cursor` made; `None` for anything else.
pub fn decode_cursor(s: &str) -> Option<BreachKey> {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

pub fn exclusion_json(id: Option<u64>, x: &Exclusion) -> Value {
    json!({
        "id": id,
        "name": x.name,
        "from": format_rfc3339(x.from),
        "to": format_rfc3339(x.to),
        "slos": x.slos,
        "customers": x.customers,
        "segments": x.segments,
        "reason": x.reason,
    })
}

pub fn runtime_exclusion_json(r: &RuntimeExclusion) -> Value {
    let mut v = exclusion_json(Some(r.id), &r.exclusion);
    let o = v.as_object_mut().expect("json object literal");
    o.insert("author".into(), json!(r.author));
    o.insert("created_at".into(), json!(format_rfc3339(r.created_at)));
    v
}

/// Body of `POST /api/v1/exclusions`: SPEC §2.4 plus `author`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusionRequest {
    pub name: String,
    pub from: String,
    pub to: String,
    pub slos: Option<Vec<String>>,
    pub customers: Option<Vec<String>>,
    pub segments: Option<Vec<String>>,
    #[serde(default)]
    pub reason: String,
    pub author: String,
}

impl ExclusionRequest {
    /// Checks the body; run-time exclusions are bounded by whole minutes so
    /// that they apply exactly to minute buckets.
    pub fn validate(self, engine: &Engine) -> Result<(Exclusion, String), ApiError> {
        let instant = |key: &str, v: &str| -> Result<Millis, ApiError> {
            let t = parse_rfc3339(v).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "field \"{key}\" must be an RFC 3339 timestamp, got \"{v}\""
                ))
            })?;
            if t.rem_euclid(MINUTE) != 0 {
                return Err(ApiError::BadRequest(format!(
                    "field \"{key}\" must be a whole minute, got \"{v}\""
                )));
            }
            Ok(t)
        };
        let from = instant("from", &self.from)?;
        let to = instant("to", &self.to)?;
        if from >= to {
            return Err(ApiError::BadRequest(
                "field \"to\" must be after \"from\"".into(),
            ));
        }
        if self.author.trim().is_empty() {
            return Err(ApiError::BadRequest(
                "field \"author\" must not be empty".into(),
            ));
        }
        if let Some(slos) = &self.slos {
            for s in slos {
                if engine.slo_index(s).is_none() {
                    return Err(ApiError::BadRequest(format!(
                        "field \"slos\": unknown SLO \"{s}\""
                    )));
                }
            }
        }
        let exclusion = Exclusion {
            name: self.name,
            from,
            to,
            slos: self.slos,
            customers: self.customers,
            segments: self.segments,
            reason: self.reason,
        };
        Ok((exclusion, self.author))
    }
}
