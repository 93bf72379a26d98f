//! The Grafana dashboards of `dashboards/`, generated here so that their
//! queries are written once, next to the metric names they use. A test
//! checks the checked-in files equal this output (`UPDATE_DASHBOARDS=1`
//! rewrites them) and evaluates every query against a real Prometheus.

use serde_json::{json, Value};

const DS: &str = "${datasource}";
const SCOPE: &str = r#"slo=~"$slo",segment=~"$segment",timezone=~"$timezone""#;

struct Panel {
    title: &'static str,
    kind: &'static str,
    description: &'static str,
    targets: Vec<(String, &'static str)>,
    w: u32,
    h: u32,
    unit: &'static str,
}

fn p(
    title: &'static str,
    kind: &'static str,
    description: &'static str,
    targets: Vec<(String, &'static str)>,
) -> Panel {
    Panel {
        title,
        kind,
        description,
        targets,
        w: 12,
        h: 8,
        unit: "short",
    }
}

impl Panel {
    fn unit(mut self, u: &'static str) -> Panel {
        self.unit = u;
        self
    }

    fn wide(mut self) -> Panel {
        self.w = 24;
        self
    }
}

fn variable(name: &str, label: &str, query: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": DS},
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "multi": true,
        "includeAll": true,
        "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "sort": 1
    })
}

fn dashboard(uid: &str, title: &str, description: &str, panels: Vec<Panel>) -> Value {
    let mut out = Vec::new();
    let (mut x, mut y) = (0u32, 0u32);
    for (i, panel) in panels.into_iter().enumerate() {
        if x + panel.w > 24 {
            x = 0;
            y += 8;
        }
        let targets: Vec<Value> = panel
            .targets
            .iter()
            .enumerate()
            .map(|(j, (expr, legend))| {
                json!({
                    "datasource": {"type": "prometheus", "uid": DS},
                    "expr": expr,
                    "legendFormat": legend,
                    "refId": ((b'A' + j as u8) as char).to_string(),
                    "instant": panel.kind == "table" || panel.kind == "bargauge",
                    "range": panel.kind == "timeseries",
                })
            })
            .collect();
        out.push(json!({
            "id": i + 1,
            "type": panel.kind,
            "title": panel.title,
            "description": panel.description,
            "datasource": {"type": "prometheus", "uid": DS},
            "gridPos": {"x": x, "y": y, "w": panel.w, "h": panel.h},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": {},
            "targets": targets,
        }));
        x += panel.w;
        if x >= 24 {
            x = 0;
            y += panel.h;
        }
    }
    json!({
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["slastream"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "templating": {"list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
            },
            variable("slo", "SLO", "label_values(slastream_slo_objective_ratio, slo)"),
            variable("segment", "Segment", "label_values(slastream_slo_attainment_ratio{slo=~\"$slo\"}, segment)"),
            variable("timezone", "Time zone", "label_values(slastream_slo_attainment_ratio{slo=~\"$slo\",segment=~\"$segment\"}, timezone)"),
        ]},
        "annotations": {"list": []},
        "links": [{"title": "slastream dashboards", "type": "dashboards", "tags": ["slastream"], "asDropdown": true}],
        "panels": out,
    })
}

/// (file name, dashboard JSON) for every dashboard.
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("slo-overview.json", overview()),
        ("slo-detail.json", detail()),
        ("ticket-slas.json", tickets()),
        ("pipeline-health.json", pipeline()),
    ]
}

fn overview() -> Value {
    dashboard(
        "slastream-slo-overview",
        "slastream / SLO overview",
        "Which SLOs, segments and time zones are worst off right now?",
        vec![
            p(
                "Attainment, worst first",
                "table",
                "good / total over each SLO's own window, per segment and time zone.",
                vec![(
                    format!("sort(slastream_slo_attainment_ratio{{{SCOPE}}})"),
                    "{{slo}} {{segment}} {{timezone}}",
                )],
            )
            .unit("percentunit"),
            p(
                "Error budget remaining, worst first",
                "table",
                "1 - budget consumed; below 0 the SLO is breached.",
                vec![(
                    format!("sort(slastream_slo_error_budget_remaining_ratio{{{SCOPE}}})"),
                    "{{slo}} {{segment}} {{timezone}}",
                )],
            )
            .unit("percentunit"),
            p(
                "Attainment against objective",
                "timeseries",
                "Attainment per group next to the objective of its segment.",
                vec![
                    (
                        format!("slastream_slo_attainment_ratio{{{SCOPE}}}"),
                        "{{slo}} {{segment}} {{timezone}}",
                    ),
                    (
                        "slastream_slo_objective_ratio{slo=~\"$slo\",segment=~\"$segment\"}"
                            .to_string(),
                        "objective {{slo}} {{segment}}",
                    ),
                ],
            )
            .unit("percentunit"),
            p(
                "Alerts firing",
                "bargauge",
                "Alert episodes firing, by alert and severity.",
                vec![(
                    "sum by (alertname, severity) (slastream_alerts_firing)".to_string(),
                    "{{alertname}} {{severity}}",
                )],
            ),
        ],
    )
}

fn detail() -> Value {
    dashboard(
        "slastream-slo-detail",
        "slastream / SLO detail",
        "How fast is an SLO spending its budget, and on what?",
        vec![
            p(
                "Error budget burn-down",
                "timeseries",
                "Budget remaining over the SLO's window as it moves.",
                vec![(format!("slastream_slo_error_budget_remaining_ratio{{{SCOPE}}}"), "{{slo}} {{segment}} {{timezone}}")],
            )
            .unit("percentunit")
            .wide(),
            p(
                "Burn rate per lookback",
                "timeseries",
                "1 = spending the budget exactly over the window. Page thresholds: 14.4 (1h/5m), 6 (6h/30m); ticket: 3 (1d/2h), 1 (3d/6h), for 30 days.",
                vec![
                    (format!("slastream_slo_burn_rate{{{SCOPE}}}"), "{{slo}} {{segment}} {{timezone}} {{lookback}}"),
                    ("vector(14.4)".to_string(), "page 1h/5m"),
                    ("vector(6)".to_string(), "page 6h/30m"),
                    ("vector(3)".to_string(), "ticket 1d/2h"),
                    ("vector(1)".to_string(), "ticket 3d/6h"),
                ],
            ),
            p(
                "Events per second, good and bad",
                "timeseries",
                "What the SLO counts (probes; clocks at their evaluation instant).",
                vec![(format!("sum by (outcome) (rate(slastream_slo_events_total{{{SCOPE}}}[$__rate_interval]))"), "{{outcome}}")],
            )
            .unit("ops"),
        ],
    )
}

fn tickets() -> Value {
    dashboard(
        "slastream-ticket-slas",
        "slastream / Ticket SLAs",
        "Which tickets are on track, at risk, breached or paused?",
        vec![
            p(
                "Open clocks by state",
                "timeseries",
                "Running ticket and incident clocks: on track, at risk (>= warn_at x target), breached, paused.",
                vec![(format!("sum by (state) (slastream_tickets_open{{{SCOPE}}})"), "{{state}}")],
            ),
            p(
                "Open clocks per segment and state",
                "table",
                "The same, per segment.",
                vec![(format!("sum by (segment, state) (slastream_tickets_open{{{SCOPE}}})"), "{{segment}} {{state}}")],
            ),
            p(
                "Breaches per priority",
                "bargauge",
                "Clocks past their target, by priority (tickets) or severity (incidents).",
                vec![(format!("sum by (priority) (slastream_ticket_sla_breaches_total{{{SCOPE}}})"), "{{priority}}")],
            ),
            p(
                "At risk or breached, per SLO",
                "timeseries",
                "What needs attention now.",
                vec![(
                    format!("sum by (slo) (slastream_tickets_open{{{SCOPE},state=~\"at_risk|breached\"}})"),
                    "{{slo}}",
                )],
            ),
        ],
    )
}

fn pipeline() -> Value {
    dashboard(
        "slastream-pipeline-health",
        "slastream / Pipeline health",
        "Is slastream keeping up, and are its alerts getting out?",
        vec![
            p(
                "Ingest rate by result",
                "timeseries",
                "accepted, duplicate, late (dead-lettered), invalid (dead-lettered).",
                vec![("sum by (result) (rate(slastream_ingest_events_total[$__rate_interval]))".to_string(), "{{result}}")],
            )
            .unit("ops"),
            p(
                "Watermark lag",
                "timeseries",
                "Wall clock minus the newest event time applied.",
                vec![("time() - slastream_ingest_watermark_timestamp_seconds".to_string(), "lag")],
            )
            .unit("s"),
            p(
                "Kafka consumer lag",
                "timeseries",
                "Messages behind the end of each topic.",
                vec![("sum by (topic) (slastream_kafka_consumer_lag_messages)".to_string(), "{{topic}}")],
            ),
            p(
                "Processing latency (p99)",
                "timeseries",
                "Per batch: decode and apply, persist; and per scrape.",
                vec![(
                    "histogram_quantile(0.99, sum by (le, stage) (rate(slastream_processing_duration_seconds_bucket[$__rate_interval])))".to_string(),
                    "{{stage}}",
                )],
            )
            .unit("s"),
            p(
                "Alert deliveries",
                "timeseries",
                "Notifications by target and outcome (ok, retry, failed).",
                vec![("sum by (target, result) (increase(slastream_alert_deliveries_total[$__rate_interval]))".to_string(), "{{target}} {{result}}")],
            )
            .wide(),
        ],
    )
}
