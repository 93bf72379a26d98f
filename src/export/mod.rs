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
use crate::engine::query::{ClockState, Scope};
use crate::engine::Engine;
use crate::model::slo::SloWindow;
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

/// Renders every SPEC §5 metric in the text format.
pub fn render(engine: &Engine, now: Millis, opts: &ExportOptions) -> String {
    let started = std::time::Instant::now();
    let r = Registry::new();
    slo_metrics(&r, engine, now, opts);
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
    let mut out = Vec::new();
    // Encoding gathered families into memory cannot fail.
    let _ = TextEncoder::new().encode(&families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn slo_metrics(r: &Registry, engine: &Engine, now: Millis, opts: &ExportOptions) {
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
    let attainment = gauge(
        r,
        "slastream_slo_attainment_ratio",
        "good / total over the SLO's own window.",
        &labels,
    );
    let budget = gauge(
        r,
        "slastream_slo_error_budget_remaining_ratio",
        "1 - budget consumed over the SLO's own window.",
        &labels,
    );
    let mut burn_labels = vec!["slo", "segment", "timezone", "lookback"];
    if opts.per_customer {
        burn_labels.push("customer");
    }
    let burn = gauge(
        r,
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
                .set(engine.objective(s, &scope));
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
            attainment
                .with_label_values(&l)
                .set(n.attainment.unwrap_or(1.0));
            budget
                .with_label_values(&l)
                .set(n.budget_remaining.unwrap_or(1.0));
            for (name, len) in LOOKBACKS {
                let mut bl = vec![&*def.name, &*group.segment, &*group.timezone, name];
                if opts.per_customer {
                    bl.push("");
                }
                burn.with_label_values(&bl)
                    .set(engine.burn_rate(s, &scope, len, now));
            }
            let c = engine.slos[s]
                .by_group
                .get(g)
                .map(|series| series.all_time())
                .unwrap_or_default();
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
                attainment
                    .with_label_values(&l)
                    .set(n.attainment.unwrap_or(1.0));
                budget
                    .with_label_values(&l)
                    .set(n.budget_remaining.unwrap_or(1.0));
                for (name, len) in LOOKBACKS {
                    burn.with_label_values(&[
                        &*def.name,
                        &*cust.segment,
                        &*cust.timezone,
                        name,
                        &*cust.id,
                    ])
                    .set(engine.burn_rate(s, &scope, len, now));
                }
            }
        }
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
    let mut count: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    for b in engine.breaches(None, None, now) {
        let level = b.priority.or(b.severity).unwrap_or("").to_string();
        *count
            .entry((b.slo, b.segment, b.timezone, level))
            .or_default() += 1;
    }
    for ((slo, seg, tz, level), n) in count {
        breaches
            .with_label_values(&[&slo, &seg, &tz, &level])
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
