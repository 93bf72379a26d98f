//! `slastream report`: fetches `/api/v1/report` from a running slastream and
//! prints it as a table, CSV or JSON.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::api::REPORT_COLUMNS as COLUMNS;

pub async fn run(url: &str, month: &str, format: &str) -> anyhow::Result<()> {
    if !matches!(format, "table" | "csv" | "json") {
        bail!("--format must be table, csv or json, got \"{format}\"");
    }
    let base = url.trim_end_matches('/');
    let wire = if format == "csv" { "csv" } else { "json" };
    let resp = reqwest::Client::new()
        .get(format!("{base}/api/v1/report"))
        .query(&[("month", month), ("format", wire)])
        .send()
        .await
        .with_context(|| format!("requesting {base}/api/v1/report"))?;
    let status = resp.status();
    let body = resp.text().await.context("reading the report")?;
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        bail!("{status}: {msg}");
    }
    match format {
        "csv" => print!("{body}"),
        "json" => println!("{body}"),
        _ => {
            let v: Value = serde_json::from_str(&body).context("parsing the report")?;
            print!("{}", table(&v));
        }
    }
    Ok(())
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.4}"),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// Renders the report rows as an aligned text table.
pub fn table(report: &Value) -> String {
    let rows: Vec<Vec<String>> = report
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| COLUMNS.iter().map(|c| cell(r.get(*c))).collect())
                .collect()
        })
        .unwrap_or_default();
    let mut widths: Vec<usize> = COLUMNS.iter().map(|c| c.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s: String = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(COLUMNS.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}
