//! Prometheus exposition (SPEC §5) with the `prometheus` crate.
//!
//! Everything derived from the SLA state is computed from the engine at
//! scrape time into a fresh registry: the label sets are exactly the live
//! (slo, segment, timezone) groups, nothing stale lingers, and the ingest
//! path never touches a metric (its counters are plain integers in the
//! engine). Process metrics that are observed as they happen (processing
//! durations, alert deliveries, alerts firing) live in `PipelineMetrics`,
//! created once, with their label handles cached by the callers.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::engine::customers::zone_of;
use crate::engine::query::{
    exhaustion as exhaustion_of, ClockState, Numbers, Scope, EXHAUSTION_LOOKBACK,
};
use crate::engine::Engine;
use crate::model::slo::{SloWindow, PRIORITIES, SEVERITIES};
use crate::model::time::{format_duration, Millis, DAY, HOUR, MINUTE};

/// The burn-rate lookbacks of SPEC §5, with their labels.
pub const LOOKBACKS: [(&str, Millis); 7] = [
    ("5m", 5 * MINUTE),
    ("30m", 30 * MINUTE),
    ("1h", HOUR),
    ("2h", 2 * HOUR),
    ("6h", 6 * HOUR),
    ("1d", DAY),
    ("3d", 3 * DAY),
];

const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// Metrics observed as they happen, registered once per process.
pub struct PipelineMetrics {
    registry: Registry,
    /// `slastream_processing_duration_seconds{stage}`: `decode_apply` (a
    /// batch through the engine), `persist` (its store write), `scrape`.
    pub processing: HistogramVec,
    /// `slastream_alert_deliveries_total{target, result}`.
    pub deliveries: IntCounterVec,
    /// `slastream_alerts_firing{alertname, severity}`.
    pub alerts_firing: IntGaugeVec,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PipelineMetrics {
    pub fn new() -> PipelineMetrics {
        let registry = Registry::new();
        let processing = HistogramVec::new(
            HistogramOpts::new(
                "slastream_processing_duration_seconds",
                "Time spent per pipeline stage and batch.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["stage"],
        )
        .expect("valid histogram");
        let deliveries = IntCounterVec::new(
            Opts::new(
                "slastream_alert_deliveries_total",
                "Alert notifications sent, by target and outcome.",
            ),
            &["target", "result"],
        )
        .expect("valid counter");
        let alerts_firing = IntGaugeVec::new(
            Opts::new("slastream_alerts_firing", "Alerts currently firing."),
            &["alertname", "severity"],
        )
        .expect("valid gauge");
        for m in [
            Box::new(processing.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(deliveries.clone()),
            Box::new(alerts_firing.clone()),
        ] {
            registry.register(m).expect("unique metric names");
        }
        // Every series exists from the start, so dashboards and rate() see
        // zeros rather than nothing.
        for stage in ["decode_apply", "persist", "scrape"] {
            processing.with_label_values(&[stage]);
        }
        for target in ["alertmanager", "webhook", "kafka"] {
            for result in ["ok", "retry", "failed"] {
                deliveries.with_label_values(&[target, result]);
            }
        }
        for (name, sev) in [
            ("SLOErrorBudgetBurn", "page"),
            ("SLOErrorBudgetBurn", "ticket"),
            ("TicketSLAAtRisk", "warning"),
            ("TicketSLABreached", "page"),
            ("TicketSLABreached", "ticket"),
        ] {
            alerts_firing.with_label_values(&[name, sev]);
        }
        PipelineMetrics {
            registry,
            processing,
            deliveries,
            alerts_firing,
        }
    }
}

/// What a scrape needs besides the engine.
#[derive(Clone)]
pub struct ExportOptions {
    /// `export.per_customer`: a customer label on the SLO gauges.
    pub per_customer: bool,
    /// `alerting.warn_at`, for the at-risk state of open tickets.
    pub warn_at: f64,
    /// Kafka consumer lag per (topic, partition), when consuming.
    pub lag: Option<Arc<crate::ingest::KafkaLag>>,
    pub pipeline: Option<Arc<PipelineMetrics>>,
}

impl Default for ExportOptions {
    /// The SPEC §2 defaults, without Kafka lag or process metrics.
    fn default() -> Self {
        ExportOptions {
            per_customer: false,
            warn_at: 0.75,
            lag: None,
            pipeline: None,
        }
    }
}

impl ExportOptions {
    pub fn from_config(cfg: &crate::config::Config) -> ExportOptions {
        ExportOptions {
            per_customer: cfg.export.per_customer,
            warn_at: cfg.alerting.warn_at,
            lag: None,
            pipeline: None,
        }
    }
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric names");
    g
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let c = CounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric names");
    c
}

/// The `window` label of an SLO: `30d`-style or `month`.
pub fn window_label(w: &SloWindow) -> String {
    match w {
        SloWindow::Rolling(len) => format_duration(*len),
        SloWindow::Month => "month".to_string(),
    }
}

/// A gauge family written straight in the text format: the families with a
/// series per customer (`export.per_customer`) hold hundreds of thousands
/// of series at 10,000 customers, which a registry would hash, clone and
/// sort on every scrape.
struct TextGauge {
    name: &'static str,
    help: &'static str,
    labels: Vec<&'static str>,
    /// Label positions in name order (the order a registry writes them).
    order: Vec<usize>,
    body: String,
}

impl TextGauge {
    fn new(name: &'static str, help: &'static str, labels: &[&'static str]) -> TextGauge {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|i| labels[*i]);
        TextGauge {
            name,
            help,
            labels: labels.to_vec(),
            order,
            body: String::new(),
        }
    }

    fn set(&mut self, values: &[&str], v: f64) {
        use std::fmt::Write;
        self.body.push_str(self.name);
        self.body.push('{');
        for (i, &at) in self.order.iter().enumerate() {
            let (l, value) = (self.labels[at], values.get(at).copied().unwrap_or_default());
            if i > 0 {
                self.body.push(',');
            }
            self.body.push_str(l);
            self.body.push_str("=\"");
            for ch in value.chars() {
                match ch {
                    '\\' => self.body.push_str("\\\\"),
                    '"' => self.body.push_str("\\\""),
                    '\n' => self.body.push_str("\\n"),
                    c => self.body.push(c),
                }
            }
            self.body.push('"');
        }
        self.body.push_str("} ");
        if v.is_nan() {
            self.body.push_str("NaN");
        } else if v.is_infinite() {
            self.body.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(self.body, "{v}");
        }
        self.body.push('\n');
    }

    /// The family in the text format; nothing without a sample.
    fn text(&self) -> String {
        if self.body.is_empty() {
            return String::new();
        }
        format!(
            "# HELP {} {}\n# TYPE {} gauge\n{}",
            self.name, self.help, self.name, self.body
        )
    }
}

/// Renders every SPEC §5 metric in the text format.
pub fn render(engine: &Engine, now: Millis, opts: &ExportOptions) -> String {
    let started = std::time::Instant::now();
    let r = Registry::new();
    let written = slo_metrics(&r, engine, now, opts);
    ticket_metrics(&r, engine, now, opts);
    latency_metrics(&r, engine, now);
    ingest_metrics(&r, engine, opts);
    let mut families = r.gather();
    if let Some(p) = &opts.pipeline {
        p.processing
            .with_label_values(&["scrape"])
            .observe(started.elapsed().as_secs_f64());
        families.extend(p.registry.gather());
    }
    families.sort_by(|a, b| a.name().cmp(b.name()));
    // Families in name order, the written ones among the gathered ones.
    let mut blocks: Vec<(&str, String)> = written.iter().map(|g| (g.name, g.text())).collect();
    for f in &families {
        let mut out = Vec::new();
        // Encoding a gathered family into memory cannot fail.
        let _ = TextEncoder::new().encode(std::slice::from_ref(f), &mut out);
        blocks.push((f.name(), String::from_utf8(out).unwrap_or_default()));
    }
    blocks.sort_by(|a, b| a.0.cmp(b.0));
    blocks.into_iter().map(|(_, text)| text).collect()
}

fn slo_metrics(r: &Registry, engine: &Engine, now: Millis, opts: &ExportOptions) -> Vec<TextGauge> {
    let objective = gauge(
        r,
        "slastream_slo_objective_ratio",
        "The SLO's objective, per segment.",
        &["slo", "segment"],
    );
    let mut labels = vec!["slo", "segment", "timezone", "window"];
    if opts.per_customer {
        labels.push("customer");
    }
    let mut attainment = TextGauge::new(
        "slastream_slo_attainment_ratio",
        "good / total over the SLO's own window.",
        &labels,
    );
    let mut budget = TextGauge::new(
        "slastream_slo_error_budget_remaining_ratio",
        "1 - budget consumed over the SLO's own window.",
        &labels,
    );
    let mut burn_labels = vec!["slo", "segment", "timezone", "lookback"];
    if opts.per_customer {
        burn_labels.push("customer");
    }
    let mut burn = TextGauge::new(
        "slastream_slo_burn_rate",
        "(bad / total) / (1 - objective) over the lookback ending now.",
        &burn_labels,
    );
    let events = counter(
        r,
        "slastream_slo_events_total",
        "Events counted by the SLO (probes, clocks at their evaluation instant), by outcome.",
        &["slo", "segment", "timezone", "outcome"],
    );
    let exhaustion = gauge(
        r,
        "slastream_slo_budget_exhaustion_seconds",
        "Seconds until the SLO's own window runs out of error budget at the 6h burn rate \
         (0 once spent; absent when nothing burns or there is no data).",
        &["slo", "segment", "timezone"],
    );
    let groups = engine.customers.groups();
    for s in 0..engine.settings.slos.len() {
        let def = engine.slo(s);
        let window = window_label(&def.window);
        let mut segments: Vec<&str> = groups.iter().map(|g| &*g.segment).collect();
        segments.sort_unstable();
        segments.dedup();
        for seg in segments {
            let scope = Scope::Filter {
                segment: Some(seg.to_string()),
                timezone: None,
            };
            objective
                .with_label_values(&[&def.name, seg])
                .set(engine.objective_at(s, &scope, now));
        }
        for (g, group) in groups.iter().enumerate() {
            let scope = Scope::Filter {
                segment: Some(group.segment.to_string()),
                timezone: Some(group.timezone.to_string()),
            };
            let zone = zone_of(&group.timezone);
            let (from, to) = engine.own_window(s, &zone, now);
            let n = engine.numbers(s, &scope, from, to, now);
            let mut l = vec![&*def.name, &*group.segment, &*group.timezone, &*window];
            if opts.per_customer {
                l.push("");
            }
            set_ratios(&mut attainment, &mut budget, &l, &n);
            let burn_6h = engine.burn_rate(s, &scope, EXHAUSTION_LOOKBACK, now);
            if let Some(secs) = exhaustion_of(&n, burn_6h, (to - from) as f64 / 1000.0) {
                exhaustion
                    .with_label_values(&[&*def.name, &*group.segment, &*group.timezone])
                    .set(secs);
            }
            for (name, len) in LOOKBACKS {
                let mut bl = vec![&*def.name, &*group.segment, &*group.timezone, name];
                if opts.per_customer {
                    bl.push("");
                }
                burn.set(&bl, engine.burn_rate(s, &scope, len, now));
            }
            // Never decreases: withdrawn outcomes stay counted (see
            // `SloState::withdrawn`).
            let c = engine.slos[s].events_total(g as u32);
            let el = [&*def.name, &*group.segment, &*group.timezone];
            events
                .with_label_values(&[el[0], el[1], el[2], "good"])
                .inc_by(c.good as f64);
            events
                .with_label_values(&[el[0], el[1], el[2], "bad"])
                .inc_by(c.bad as f64);
        }
        if opts.per_customer {
            for (idx, cust) in engine.customers.iter() {
                let scope = Scope::Customer(idx);
                let zone = zone_of(&cust.timezone);
                let (from, to) = engine.own_window(s, &zone, now);
                let n = engine.numbers(s, &scope, from, to, now);
                let l = [
                    &*def.name,
                    &*cust.segment,
                    &*cust.timezone,
                    &*window,
                    &*cust.id,
                ];
                set_ratios(&mut attainment, &mut budget, &l, &n);
                for (name, len) in LOOKBACKS {
                    burn.set(
                        &[&*def.name, &*cust.segment, &*cust.timezone, name, &*cust.id],
                        engine.burn_rate(s, &scope, len, now),
                    );
                }
            }
        }
    }
    vec![attainment, budget, burn]
}

/// Attainment and budget remaining of one scope; a scope with no data
/// (status `no_data`) has neither, so its series are left out rather than
/// shown as a perfect 1.
fn set_ratios(attainment: &mut TextGauge, budget: &mut TextGauge, labels: &[&str], n: &Numbers) {
    let Some(a) = n.attainment else { return };
    attainment.set(labels, a);
    if let Some(b) = n.budget_remaining {
        budget.set(labels, b);
    }
}

fn ticket_metrics(r: &Registry, engine: &Engine, now: Millis, opts: &ExportOptions) {
    let open = gauge(
        r,
        "slastream_tickets_open",
        "Running ticket and incident clocks by state.",
        &["slo", "segment", "timezone", "state"],
    );
    let breaches = counter(
        r,
        "slastream_ticket_sla_breaches_total",
        "Ticket and incident clocks that passed their target.",
        &["slo", "segment", "timezone", "priority"],
    );
    let mut by: BTreeMap<(usize, u32, ClockState), u64> = BTreeMap::new();
    for c in engine.open_clocks(now, opts.warn_at) {
        let g = engine.customers.get(c.customer).group;
        *by.entry((c.slo, g, c.state)).or_default() += 1;
    }
    let groups = engine.customers.groups();
    for s in 0..engine.settings.slos.len() {
        let def = engine.slo(s);
        if !(def.indicator.is_ticket() || def.indicator.is_incident_clock()) {
            continue;
        }
        for (g, group) in groups.iter().enumerate() {
            for state in ClockState::ALL {
                let n = by.get(&(s, g as u32, state)).copied().unwrap_or(0);
                open.with_label_values(&[
                    &*def.name,
                    &*group.segment,
                    &*group.timezone,
                    state.label(),
                ])
                .set(n as f64);
            }
        }
    }
    // Never decreases (see `Engine::breaches_total`).
    for ((s, g, level), n) in engine.breaches_total(now) {
        let def = engine.slo(s);
        let group = engine.customers.group(g);
        let level = if def.indicator.is_ticket() {
            PRIORITIES[level as usize]
        } else {
            SEVERITIES[level as usize]
        };
        breaches
            .with_label_values(&[&*def.name, &*group.segment, &*group.timezone, level])
            .inc_by(n as f64);
    }
}

fn latency_metrics(r: &Registry, engine: &Engine, now: Millis) {
    let g = gauge(
        r,
        "slastream_probe_latency_seconds",
        "Probe latency quantiles over the last 5 minutes.",
        &["service", "segment", "quantile"],
    );
    for (service, segment, values) in engine.latency.quantiles(now, &QUANTILES) {
        for (q, v) in QUANTILES.iter().zip(values) {
            g.with_label_values(&[&*service, &*segment, &q.to_string()])
                .set(v);
        }
    }
}

fn ingest_metrics(r: &Registry, engine: &Engine, opts: &ExportOptions) {
    let events = counter(
        r,
        "slastream_ingest_events_total",
        "Events read, by kind and result.",
        &["kind", "result"],
    );
    for kind in ["ticket", "incident", "probe", "unknown"] {
        let c = engine.counts.get(kind).cloned().unwrap_or_default();
        if kind == "unknown" && c.invalid == 0 {
            continue;
        }
        for (result, n) in [
            ("accepted", c.accepted),
            ("duplicate", c.duplicate),
            ("late", c.late),
            ("invalid", c.invalid),
        ] {
            events.with_label_values(&[kind, result]).inc_by(n as f64);
        }
    }
    let rejections = counter(
        r,
        "slastream_limit_rejections_total",
        "Events rejected (as invalid) because they would pass a [limits] bound.",
        &["limit"],
    );
    for (limit, n) in engine.limit_rejections.by_label() {
        rejections.with_label_values(&[limit]).inc_by(n as f64);
    }
    let w = gauge(
        r,
        "slastream_ingest_watermark_timestamp_seconds",
        "Largest occurred_at among applied events.",
        &[],
    );
    w.with_label_values(&[] as &[&str])
        .set(engine.watermark().map(|w| w as f64 / 1000.0).unwrap_or(0.0));
    if let Some(lag) = &opts.lag {
        let g = gauge(
            r,
            "slastream_kafka_consumer_lag_messages",
            "Messages between the consumer position and the end of the partition.",
            &["topic", "partition"],
        );
        for (topic, partition, l) in lag.snapshot() {
            g.with_label_values(&[&topic, &partition.to_string()])
                .set(l as f64);
        }
        counter(
            r,
            "slastream_kafka_rejoins_total",
            "Times the consumer rejoined its group after holding too few partitions too long.",
            &[],
        )
        .with_label_values(&[] as &[&str])
        .inc_by(lag.rejoins() as f64);
        counter(
            r,
            "slastream_kafka_lost_messages_total",
            "Messages gone from the log (retention) before the consumer read them.",
            &[],
        )
        .with_label_values(&[] as &[&str])
        .inc_by(lag.lost() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::event::decode;
    use crate::model::time::parse_rfc3339;

    #[test]
    fn written_families_escape_label_values_and_skip_empty_families() {
        let mut g = TextGauge::new("x_ratio", "A ratio.", &["slo", "customer"]);
        assert_eq!(g.text(), "", "no sample, no family");
        g.set(&["a", "q\"uo\\te\nline"], 0.5);
        g.set(&["a", "b"], f64::INFINITY);
        assert_eq!(
            g.text(),
            "# HELP x_ratio A ratio.\n# TYPE x_ratio gauge\n\
             x_ratio{customer=\"q\\\"uo\\\\te\\nline\",slo=\"a\"} 0.5\n\
             x_ratio{customer=\"b\",slo=\"a\"} +Inf\n"
        );
    }

    const CONFIG: &str = r#"
[ingest]
max_lateness = "7d"

[[customers]]
id = "acme"
segment = "enterprise"
timezone = "Europe/Berlin"

[[slos]]
name = "response"
indicator = "ticket_response"
objective = 0.9
window = "30d"
clock = "24x7"
targets = { P1 = "1h", P2 = "4h", P3 = "8h", P4 = "16h" }

[[slos]]
name = "resolution"
indicator = "ticket_resolution"
objective = 0.9
window = "30d"
clock = "24x7"
targets = { P1 = "4h", P2 = "1d", P3 = "3d", P4 = "5d" }

[[slos]]
name = "api"
indicator = "probe_availability"
objective = 0.99
window = "30d"
"#;

    fn t(s: &str) -> Millis {
        parse_rfc3339(s).expect("test timestamp")
    }

    /// The wall clock of every apply: after every event of these tests.
    fn wall() -> Millis {
        t("2026-11-03T00:00:00Z")
    }

    fn engine() -> Engine {
        let cfg = crate::config::parse(CONFIG, &[], std::path::Path::new("."))
            .expect("test config is valid");
        Engine::new(&cfg)
    }

    fn feed(e: &mut Engine, line: &str) {
        let ev = decode(line.as_bytes()).unwrap_or_else(|err| panic!("{line}: {err}"));
        assert_eq!(
            e.apply(&ev, wall()),
            crate::engine::Applied::Accepted,
            "{line}"
        );
    }

    fn ticket(e: &mut Engine, id: &str, at: &str, ticket: &str, action: &str, extra: &str) {
        feed(
            e,
            &format!(
                r#"{{"event_id":"{id}","kind":"ticket","occurred_at":"{at}","customer_id":"acme","ticket_id":"{ticket}","action":"{action}"{extra}}}"#
            ),
        );
    }

    /// Every series of a counter family (`…_total`) in the exposition.
    fn counters(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                let name = k.split('{').next()?;
                if !name.ends_with("_total") {
                    return None;
                }
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// Renders at `now` and checks that no counter series went down (or
    /// vanished) since `before`; returns the new counters.
    fn render_monotonic(
        e: &Engine,
        now: &str,
        before: &BTreeMap<String, f64>,
        step: &str,
    ) -> BTreeMap<String, f64> {
        let after = counters(&render(e, t(now), &ExportOptions::default()));
        for (k, v) in before {
            let got = after.get(k).copied();
            assert!(
                got.is_some_and(|g| g >= *v),
                "{step}: {k} went from {v} to {got:?}"
            );
        }
        after
    }

    fn value(m: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
            .filter(|(k, _)| {
                labels
                    .iter()
                    .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    #[test]
    fn counters_never_decrease_when_outcomes_are_withdrawn() {
        let mut e = engine();
        let mut m = BTreeMap::new();
        let bad_response = [("slo", "response"), ("outcome", "bad")];
        let breach_response = [("slo", "response"), ("priority", "P1")];

        // A P1 answered after 3h: a breached response.
        ticket(
            &mut e,
            "1",
            "2026-11-02T10:00:00Z",
            "T1",
            "opened",
            r#","priority":"P1""#,
        );
        ticket(&mut e, "2", "2026-11-02T13:00:00Z", "T1", "responded", "");
        m = render_monotonic(&e, "2026-11-02T14:00:00Z", &m, "responded late");
        assert_eq!(value(&m, "slastream_slo_events_total", &bad_response), 1.0);
        assert_eq!(
            value(&m, "slastream_ticket_sla_breaches_total", &breach_response),
            1.0
        );

        // Canceled: the outcome leaves every SLA, the counters keep it.
        ticket(&mut e, "3", "2026-11-02T14:00:00Z", "T1", "canceled", "");
        assert!(e.breaches(None, None, t("2026-11-02T15:00:00Z")).is_empty());
        m = render_monotonic(&e, "2026-11-02T15:00:00Z", &m, "canceled");
        assert_eq!(value(&m, "slastream_slo_events_total", &bad_response), 1.0);
        assert_eq!(
            value(&m, "slastream_ticket_sla_breaches_total", &breach_response),
            1.0
        );

        // Resolved in time (good), then reopened (withdrawn), then resolved
        // late (bad): good stays counted, bad is added.
        let good_resolution = [("slo", "resolution"), ("outcome", "good")];
        let bad_resolution = [("slo", "resolution"), ("outcome", "bad")];
        ticket(
            &mut e,
            "4",
            "2026-11-02T10:00:00Z",
            "T2",
            "opened",
            r#","priority":"P1""#,
        );
        ticket(&mut e, "5", "2026-11-02T10:10:00Z", "T2", "responded", "");
        ticket(&mut e, "6", "2026-11-02T11:00:00Z", "T2", "resolved", "");
        m = render_monotonic(&e, "2026-11-02T15:30:00Z", &m, "resolved");
        assert_eq!(
            value(&m, "slastream_slo_events_total", &good_resolution),
            1.0
        );
        ticket(&mut e, "7", "2026-11-02T12:00:00Z", "T2", "reopened", "");
        m = render_monotonic(&e, "2026-11-02T15:40:00Z", &m, "reopened");
        assert_eq!(
            value(&m, "slastream_slo_events_total", &good_resolution),
            1.0
        );
        ticket(&mut e, "8", "2026-11-02T20:00:00Z", "T2", "resolved", "");
        m = render_monotonic(&e, "2026-11-02T21:00:00Z", &m, "resolved late");
        assert_eq!(
            value(&m, "slastream_slo_events_total", &good_resolution),
            1.0
        );
        assert_eq!(
            value(&m, "slastream_slo_events_total", &bad_resolution),
            1.0
        );

        // A running clock passes its target as time passes (no event), then
        // its priority is lowered so it is no longer breached: the breach
        // moves to the new priority's series and stays counted under P1.
        ticket(
            &mut e,
            "9",
            "2026-11-02T21:00:00Z",
            "T3",
            "opened",
            r#","priority":"P1""#,
        );
        m = render_monotonic(&e, "2026-11-02T21:30:00Z", &m, "open, on track");
        assert_eq!(
            value(&m, "slastream_ticket_sla_breaches_total", &breach_response),
            1.0
        );
        m = render_monotonic(&e, "2026-11-02T22:30:00Z", &m, "open, breached");
        assert_eq!(
            value(&m, "slastream_ticket_sla_breaches_total", &breach_response),
            2.0
        );
        ticket(
            &mut e,
            "10",
            "2026-11-02T22:40:00Z",
            "T3",
            "priority_changed",
            r#","priority":"P4""#,
        );
        m = render_monotonic(&e, "2026-11-02T22:50:00Z", &m, "priority lowered");
        assert_eq!(
            value(&m, "slastream_ticket_sla_breaches_total", &breach_response),
            2.0
        );
        ticket(&mut e, "11", "2026-11-02T22:55:00Z", "T3", "canceled", "");
        render_monotonic(&e, "2026-11-02T23:00:00Z", &m, "canceled while running");
    }

    #[test]
    fn counters_never_decrease_when_a_customer_moves_group() {
        let mut e = engine();
        let probe = |id: &str, at: &str, segment: &str, success: bool| {
            format!(
                r#"{{"event_id":"{id}","kind":"probe","occurred_at":"{at}","customer_id":"zed","segment":"{segment}","timezone":"UTC","probe_id":"p","service":"api","success":{success},"latency_ms":5}}"#
            )
        };
        feed(&mut e, &probe("p1", "2026-11-02T12:00:00Z", "gold", true));
        feed(&mut e, &probe("p2", "2026-11-02T12:01:00Z", "gold", false));
        feed(
            &mut e,
            r#"{"event_id":"t1","kind":"ticket","occurred_at":"2026-11-02T12:02:00Z","customer_id":"zed","ticket_id":"Z","action":"opened","priority":"P1"}"#,
        );
        let gold = [("slo", "api"), ("segment", "gold")];
        let m = render_monotonic(&e, "2026-11-02T14:00:00Z", &BTreeMap::new(), "gold");
        assert_eq!(value(&m, "slastream_slo_events_total", &gold), 2.0);
        assert_eq!(
            value(
                &m,
                "slastream_ticket_sla_breaches_total",
                &[("slo", "response"), ("segment", "gold")]
            ),
            1.0
        );
        // An earlier event settles zed in segment silver: its counts and its
        // breach move there, and stay counted in gold.
        feed(&mut e, &probe("p0", "2026-11-02T11:00:00Z", "silver", true));
        let m = render_monotonic(&e, "2026-11-02T14:10:00Z", &m, "moved");
        assert_eq!(value(&m, "slastream_slo_events_total", &gold), 2.0);
        assert_eq!(
            value(
                &m,
                "slastream_slo_events_total",
                &[("slo", "api"), ("segment", "silver")]
            ),
            3.0
        );
        assert_eq!(
            value(
                &m,
                "slastream_ticket_sla_breaches_total",
                &[("slo", "response"), ("segment", "silver")]
            ),
            1.0
        );
    }

    #[test]
    fn groups_without_data_have_no_ratios() {
        let mut e = engine();
        feed(
            &mut e,
            r#"{"event_id":"p1","kind":"probe","occurred_at":"2026-11-02T12:00:00Z","customer_id":"zed","segment":"gold","timezone":"UTC","probe_id":"p","service":"api","success":true,"latency_ms":5}"#,
        );
        let text = render(&e, t("2026-11-02T12:30:00Z"), &ExportOptions::default());
        let has = |name: &str, slo: &str, segment: &str| {
            text.lines().any(|l| {
                l.starts_with(&format!("{name}{{"))
                    && l.contains(&format!("slo=\"{slo}\""))
                    && l.contains(&format!("segment=\"{segment}\""))
            })
        };
        for name in [
            "slastream_slo_attainment_ratio",
            "slastream_slo_error_budget_remaining_ratio",
        ] {
            assert!(has(name, "api", "gold"), "{name} of a group with data");
            // acme (enterprise) sent nothing; no ticket anywhere.
            assert!(!has(name, "api", "enterprise"), "{name}: {text}");
            assert!(!has(name, "response", "gold"), "{name}: {text}");
        }
        // Burn rates stay (0 when there is no data, SPEC §3).
        assert!(has("slastream_slo_burn_rate", "api", "enterprise"));
    }
}
