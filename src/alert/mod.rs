//! Alerts (SPEC §6): rules → alert state → delivery.
//!
//! `evaluate` is pure: the set of alerts that fire at `now`, each identified by
//! the fingerprint of its labels. `Book` is the durable state: every alert
//! episode (from its first firing to its resolution) with the targets that
//! still owe a notification. A change is written to the store before any
//! delivery is attempted, and a delivery is forgotten only once the target
//! accepted it, so a restart (even kill -9) neither loses a pending
//! notification nor starts a second firing of an episode; a notification may
//! be repeated, always with the same fingerprint.
//!
//! While the engine has not caught up with its input (after a start, during a
//! broker outage), the book holds: no episode starts or resolves, since the
//! missing events may have answered a ticket or moved a burn rate; episodes
//! already firing keep being re-sent.

pub mod deliver;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{AlertingConfig, HttpConfig};
use crate::engine::query::{ClockState, Scope};
use crate::engine::Engine;
use crate::model::slo::SloWindow;
use crate::model::time::{format_duration, format_rfc3339, Millis};
use crate::rules::{burn_threshold, window_length, WINDOW_PAIRS};

pub type Labels = BTreeMap<String, String>;

/// "The engine holds every event up to now": set by whoever feeds the engine
/// (the consumer once it reached the end of every partition; always true for
/// `replay`), read by the alerter before each evaluation. While it is false
/// the alert book holds (see the module comment).
pub type CaughtUp = Arc<AtomicBool>;

/// The base URL of the links put in annotations: the API as this process
/// serves it.
pub fn api_base(http: &HttpConfig) -> String {
    format!("http://{}", http.listen)
}

/// `{base}{path}?k=v&..` with every value percent-encoded. A base that does
/// not parse (it comes from the configuration) gives the link unencoded
/// rather than none.
fn link(base: &str, path: &str, query: &[(&str, &str)]) -> String {
    match reqwest::Url::parse_with_params(&format!("{base}{path}"), query) {
        Ok(url) => url.to_string(),
        Err(_) => format!("{base}{path}"),
    }
}

/// One alert as the rules see it at an instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub labels: Labels,
    pub annotations: Labels,
}

/// A stable identity: a hash of the sorted labels, as 16 hex digits.
pub fn fingerprint(labels: &Labels) -> String {
    let mut text = String::new();
    for (k, v) in labels {
        text.push_str(k);
        text.push('\u{1}');
        text.push_str(v);
        text.push('\u{2}');
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every alert firing at `now`, by fingerprint. `api` is the base URL put in
/// the annotations.
pub fn evaluate(
    engine: &Engine,
    now: Millis,
    cfg: &AlertingConfig,
    api: &str,
) -> BTreeMap<String, Firing> {
    let mut out = BTreeMap::new();
    let mut add = |labels: Labels, annotations: Labels| {
        out.insert(
            fingerprint(&labels),
            Firing {
                labels,
                annotations,
            },
        );
    };
    // SLOErrorBudgetBurn per (slo, segment, timezone), and per customer when
    // asked.
    for s in 0..engine.settings.slos.len() {
        let def = engine.slo(s);
        let window = window_length(&def.window);
        let mut scopes: Vec<(Scope, Vec<(&str, String)>)> = engine
            .customers
            .groups()
            .iter()
            .map(|g| {
                (
                    Scope::Filter {
                        segment: Some(g.segment.to_string()),
                        timezone: Some(g.timezone.to_string()),
                    },
                    vec![
                        ("segment", g.segment.to_string()),
                        ("timezone", g.timezone.to_string()),
                    ],
                )
            })
            .collect();
        if cfg.per_customer_burn_alerts {
            for (idx, c) in engine.customers.iter() {
                scopes.push((
                    Scope::Customer(idx),
                    vec![
                        ("segment", c.segment.to_string()),
                        ("timezone", c.timezone.to_string()),
                        ("customer", c.id.to_string()),
                    ],
                ));
            }
        }
        for (scope, scope_labels) in &scopes {
            for (long, short, share, severity) in WINDOW_PAIRS {
                let t = burn_threshold(window, long, share);
                let bl = engine.burn_rate(s, scope, long, now);
                if bl <= t {
                    continue;
                }
                let bs = engine.burn_rate(s, scope, short, now);
                if bs <= t {
                    continue;
                }
                let (lw, sw) = (format_duration(long), format_duration(short));
                let mut l = labels(&[
                    ("alertname", "SLOErrorBudgetBurn"),
                    ("slo", &def.name),
                    ("severity", severity),
                    ("long_window", &lw),
                    ("short_window", &sw),
                ]);
                for (k, v) in scope_labels {
                    l.insert(k.to_string(), v.clone());
                }
                // The compliance query of the alert's scope: a customer
                // alone (the API refuses it combined with a group), else the
                // group.
                let mut query = vec![("slo", def.name.as_str())];
                match scope_labels.iter().find(|(k, _)| *k == "customer") {
                    Some((k, v)) => query.push((k, v.as_str())),
                    None => query.extend(scope_labels.iter().map(|(k, v)| (*k, v.as_str()))),
                }
                let a = labels(&[
                    (
                        "summary",
                        &format!(
                            "{}: error budget burning at {bl:.1}x over {lw} and {bs:.1}x over {sw} (threshold {t}x)",
                            def.name
                        ),
                    ),
                    ("api", &link(api, "/api/v1/compliance", &query)),
                ]);
                add(l, a);
            }
        }
    }
    // SLOBudgetExhaustionForecast per (slo, segment, timezone).
    for s in 0..engine.settings.slos.len() {
        let def = engine.slo(s);
        for g in engine.customers.groups() {
            let scope = Scope::Filter {
                segment: Some(g.segment.to_string()),
                timezone: Some(g.timezone.to_string()),
            };
            let zone = crate::engine::customers::zone_of(&g.timezone);
            let Some((secs, forecast)) = exhaustion_forecast(engine, s, &scope, &zone, now, cfg)
            else {
                continue;
            };
            let l = labels(&[
                ("alertname", "SLOBudgetExhaustionForecast"),
                ("slo", &def.name),
                ("severity", "ticket"),
                ("segment", &g.segment),
                ("timezone", &g.timezone),
            ]);
            let a = labels(&[
                (
                    "summary",
                    &format!(
                        "{}: at the 6h burn rate the error budget of {} / {} runs out in {} ({})",
                        def.name,
                        g.segment,
                        g.timezone,
                        format_duration((secs as Millis).max(1) * 1000),
                        format_rfc3339(forecast)
                    ),
                ),
                ("forecast", &format_rfc3339(forecast)),
                (
                    "api",
                    &link(
                        api,
                        "/api/v1/compliance",
                        &[
                            ("slo", def.name.as_str()),
                            ("segment", &g.segment),
                            ("timezone", &g.timezone),
                        ],
                    ),
                ),
            ]);
            add(l, a);
        }
    }
    // Ticket and incident clocks.
    for c in engine.open_clocks(now, cfg.warn_at) {
        let def = engine.slo(c.slo);
        let cust = engine.customers.get(c.customer);
        let at_risk = c.elapsed as f64 >= cfg.warn_at * c.target as f64;
        let (alertname, severity) = match c.state {
            ClockState::Breached => (
                "TicketSLABreached",
                if c.level == "P1" || c.level == "SEV1" {
                    "page"
                } else {
                    "ticket"
                },
            ),
            _ if at_risk => ("TicketSLAAtRisk", "warning"),
            _ => continue,
        };
        let ticket = c.kind == "ticket";
        let (level_key, id_key) = if ticket {
            ("priority", "ticket_id")
        } else {
            ("incident_severity", "incident_id")
        };
        let l = labels(&[
            ("alertname", alertname),
            ("slo", &def.name),
            ("severity", severity),
            ("customer", &cust.id),
            ("segment", &cust.segment),
            ("timezone", &cust.timezone),
            (level_key, c.level),
            (id_key, &c.id),
        ]);
        let a = labels(&[
            (
                "summary",
                &format!(
                    "{} {} ({}, {}): {} of {} elapsed on {}",
                    c.kind,
                    c.id,
                    c.level,
                    cust.id,
                    format_duration(c.elapsed.max(0) / 1000 * 1000),
                    format_duration(c.target),
                    def.name
                ),
            ),
            (
                "api",
                &link(
                    api,
                    "/api/v1/breaches",
                    &[("slo", &def.name), ("customer", &cust.id)],
                ),
            ),
        ]);
        add(l, a);
    }
    out
}

/// SPEC §6 `SLOBudgetExhaustionForecast`: the time to exhaustion (seconds)
/// and the forecast instant when, at the 6h burn rate, the remaining budget
/// of the SLO's own window runs out before the calendar month ends (`month`
/// windows, in `zone`) or within `forecast_horizon` (rolling windows), while
/// it is not spent yet.
pub fn exhaustion_forecast(
    engine: &Engine,
    slo: usize,
    scope: &Scope,
    zone: &jiff::tz::TimeZone,
    now: Millis,
    cfg: &AlertingConfig,
) -> Option<(f64, Millis)> {
    let secs = engine.exhaustion_seconds(slo, scope, zone, now)?;
    if secs <= 0.0 {
        return None;
    }
    let ms = secs * 1000.0;
    let due = match engine.slo(slo).window {
        SloWindow::Month => {
            let (_, month_end) = engine.own_window(slo, zone, now);
            (now as f64) + ms < month_end as f64
        }
        SloWindow::Rolling(_) => ms <= cfg.forecast_horizon as f64,
    };
    // Rounded to the millisecond: the floating point of the formula must
    // not put the instant a millisecond early.
    due.then(|| {
        (
            secs,
            now.saturating_add(ms.round().min(i64::MAX as f64 / 2.0) as Millis),
        )
    })
}

/// One alert episode and what is owed about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: Millis,
    pub ends_at: Option<Millis>,
    /// Targets that have not accepted the current status yet.
    pub pending: BTreeSet<String>,
    /// When each Alertmanager target last accepted the firing status.
    pub sent_at: BTreeMap<String, Millis>,
}

/// What a notification said about an episode: its start and, once resolved,
/// its end. A delivery acknowledges only the revision it carried.
pub type Revision = (Millis, Option<Millis>);

impl Episode {
    pub fn revision(&self) -> Revision {
        (self.starts_at, self.ends_at)
    }

    pub fn status(&self) -> &'static str {
        if self.ends_at.is_some() {
            "resolved"
        } else {
            "firing"
        }
    }
}

/// The durable alert state: episodes by fingerprint.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Book {
    pub episodes: BTreeMap<String, Episode>,
}

impl Book {
    /// Folds the alerts firing at `now` into the book: new ones start an
    /// episode, vanished ones resolve it, firing ones owe Alertmanager a
    /// resend every `resend`. With `caught_up` false the book holds: nothing
    /// starts or resolves, firing episodes are still re-sent. Returns the
    /// fingerprints that changed.
    pub fn update(
        &mut self,
        firing: BTreeMap<String, Firing>,
        now: Millis,
        targets: &[String],
        resend: Millis,
        caught_up: bool,
    ) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        let all: BTreeSet<String> = targets.iter().cloned().collect();
        if caught_up {
            for (fp, f) in &firing {
                if self.episodes.get(fp).is_some_and(|e| e.ends_at.is_none()) {
                    continue;
                }
                self.episodes.insert(
                    fp.clone(),
                    Episode {
                        labels: f.labels.clone(),
                        annotations: f.annotations.clone(),
                        starts_at: now,
                        ends_at: None,
                        pending: all.clone(),
                        sent_at: BTreeMap::new(),
                    },
                );
                changed.insert(fp.clone());
            }
        }
        for (fp, e) in self.episodes.iter_mut() {
            if e.ends_at.is_some() {
                continue;
            }
            if caught_up && !firing.contains_key(fp) {
                e.ends_at = Some(now);
                e.pending = all.clone();
                changed.insert(fp.clone());
                continue;
            }
            // Alertmanager forgets a firing alert it has not heard of for its
            // `resolve_timeout`, so a firing episode is re-sent to it.
            for t in targets.iter().filter(|t| t.starts_with("alertmanager:")) {
                let due = e.sent_at.get(t).is_none_or(|s| now - s >= resend);
                if due && !e.pending.contains(t) {
                    e.pending.insert(t.clone());
                    changed.insert(fp.clone());
                }
            }
        }
        changed
    }

    /// A target accepted the status `revision` of an episode. A status that
    /// changed meanwhile (resolved, or a new episode under the same
    /// fingerprint) stays owed. Returns whether the book changed.
    pub fn delivered(&mut self, fp: &str, target: &str, revision: Revision, now: Millis) -> bool {
        let Some(e) = self.episodes.get_mut(fp) else {
            return false;
        };
        if e.revision() != revision {
            return false;
        }
        let removed = e.pending.remove(target);
        if removed && e.ends_at.is_none() {
            e.sent_at.insert(target.to_string(), now);
        }
        removed
    }

    /// Drops resolved episodes nobody is owed anything about; returns them.
    pub fn prune(&mut self) -> Vec<String> {
        let done: Vec<String> = self
            .episodes
            .iter()
            .filter(|(_, e)| e.ends_at.is_some() && e.pending.is_empty())
            .map(|(fp, _)| fp.clone())
            .collect();
        for fp in &done {
            self.episodes.remove(fp);
        }
        done
    }

    /// Firing episodes per (alertname, severity).
    pub fn firing_counts(&self) -> BTreeMap<(String, String), i64> {
        let mut m = BTreeMap::new();
        for e in self.episodes.values().filter(|e| e.ends_at.is_none()) {
            let k = (
                e.labels.get("alertname").cloned().unwrap_or_default(),
                e.labels.get("severity").cloned().unwrap_or_default(),
            );
            *m.entry(k).or_default() += 1;
        }
        m
    }
}

/// Every delivery target of a configuration, as `kind:address`.
pub fn targets(cfg: &AlertingConfig, kafka_topic: Option<&str>) -> Vec<String> {
    let mut t: Vec<String> = cfg
        .alertmanager_urls
        .iter()
        .map(|u| format!("alertmanager:{}", u.trim_end_matches('/')))
        .collect();
    t.extend(cfg.webhook_urls.iter().map(|u| format!("webhook:{u}")));
    if let (true, Some(topic)) = (cfg.kafka, kafka_topic) {
        t.push(format!("kafka:{topic}"));
    }
    t
}

#[cfg(test)]
mod tests;
