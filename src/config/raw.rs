//! The configuration file as written (SPEC §2), before any check: serde structs
//! that mirror the TOML layout key for key and reject unknown keys.
//!
//! Every field is optional here, even the ones SPEC requires: "required" is a
//! check of the validation pass, so that a missing key is reported together with
//! every other problem instead of stopping deserialization. Values stay as the
//! strings the user wrote (durations, zones, intervals, timestamps) and are parsed
//! by the validation pass in `config/mod.rs`.
//!
//! serde stops at the first error, so [`lenient`] re-probes a failing document key
//! by key to report every unknown key and wrong type with its path, and
//! [`apply_env`] merges `SLASTREAM__*` overrides into the TOML tree beforehand.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use toml::{Table, Value};

use super::Problems;

/// The whole file. Sections absent from the file take their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawConfig {
    #[serde(default)]
    pub kafka: RawKafka,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub ingest: RawIngest,
    #[serde(default)]
    pub alerting: RawAlerting,
    #[serde(default)]
    pub export: RawExport,
    #[serde(default)]
    pub cluster: RawCluster,
    #[serde(default)]
    pub customers: Vec<RawCustomer>,
    /// Files holding more `[[customers]]`, relative to the config file's directory.
    #[serde(default)]
    pub customers_files: Vec<String>,
    #[serde(default)]
    pub calendars: BTreeMap<String, RawCalendar>,
    #[serde(default)]
    pub slos: Vec<RawSlo>,
    #[serde(default)]
    pub exclusions: Vec<RawExclusion>,
    #[serde(default)]
    pub credits: Vec<RawCredit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawKafka {
    pub brokers: Option<String>,
    pub group_id: Option<String>,
    #[serde(default)]
    pub topics: RawTopics,
    /// Passed through to librdkafka as strings.
    #[serde(default)]
    pub properties: BTreeMap<String, Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawTopics {
    pub tickets: Option<String>,
    pub incidents: Option<String>,
    pub probes: Option<String>,
    pub alerts: Option<String>,
    pub dead_letter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawState {
    pub path: Option<String>,
    pub commit_interval: Option<String>,
    pub block_cache: Option<String>,
    pub write_buffer: Option<String>,
    pub hot_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawHttp {
    pub listen: Option<String>,
    pub admin_token: Option<String>,
    pub read_auth: Option<bool>,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
}

/// One `[[http.tokens]]` entry (SPEC §4.1).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawToken {
    pub name: Option<String>,
    pub token_sha256: Option<String>,
    pub role: Option<String>,
    pub customers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawLimits {
    pub max_customers: Option<i64>,
    pub max_groups: Option<i64>,
    pub max_services: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawIngest {
    pub max_lateness: Option<String>,
    pub max_future_skew: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawAlerting {
    pub alertmanager_urls: Option<Vec<String>>,
    pub webhook_urls: Option<Vec<String>>,
    pub kafka: Option<bool>,
    pub resend_interval: Option<String>,
    pub warn_at: Option<f64>,
    pub per_customer_burn_alerts: Option<bool>,
    pub forecast_horizon: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawExport {
    pub per_customer: Option<bool>,
}

/// `[cluster]` (SPEC §8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCluster {
    pub enabled: Option<bool>,
    pub tasks: Option<i64>,
    pub instance: Option<String>,
    pub advertise_url: Option<String>,
}

/// One `[[customers]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCustomer {
    pub id: Option<String>,
    pub segment: Option<String>,
    pub timezone: Option<String>,
    pub calendar: Option<String>,
}

/// A file named in `customers_files`: `[[customers]]` and nothing else.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCustomersFile {
    #[serde(default)]
    pub customers: Vec<RawCustomer>,
}

/// One `[calendars.<name>]` table. Absent weekdays are closed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCalendar {
    pub timezone: Option<String>,
    pub mon: Option<Vec<String>>,
    pub tue: Option<Vec<String>>,
    pub wed: Option<Vec<String>>,
    pub thu: Option<Vec<String>>,
    pub fri: Option<Vec<String>>,
    pub sat: Option<Vec<String>>,
    pub sun: Option<Vec<String>>,
    pub holidays: Option<Vec<DateText>>,
}

impl RawCalendar {
    /// The weekday lists, Monday first, with their key names.
    pub fn week(&self) -> [(&'static str, Option<&Vec<String>>); 7] {
        [
            ("mon", self.mon.as_ref()),
            ("tue", self.tue.as_ref()),
            ("wed", self.wed.as_ref()),
            ("thu", self.thu.as_ref()),
            ("fri", self.fri.as_ref()),
            ("sat", self.sat.as_ref()),
            ("sun", self.sun.as_ref()),
        ]
    }
}

/// One `[[slos]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawSlo {
    pub name: Option<String>,
    pub description: Option<String>,
    pub indicator: Option<String>,
    pub objective: Option<f64>,
    pub window: Option<String>,
    pub filter: Option<BTreeMap<String, String>>,
    pub segment_objectives: Option<BTreeMap<String, f64>>,
    pub threshold_ms: Option<f64>,
    pub clock: Option<String>,
    pub pausable: Option<bool>,
    /// Level (`P1`.., `SEV1`..) to duration.
    pub targets: Option<BTreeMap<String, String>>,
    /// Segment to level to duration.
    pub segment_targets: Option<BTreeMap<String, BTreeMap<String, String>>>,
    pub severities: Option<Vec<String>>,
    /// Earlier versions, oldest first (`[[slos.history]]`).
    pub history: Option<Vec<RawSloVersion>>,
}

/// One `[[slos.history]]` entry: the terms that applied before `until`. Only
/// the keys a definition history may change (SPEC §2.3).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawSloVersion {
    pub until: Option<DateText>,
    pub change: Option<String>,
    pub objective: Option<f64>,
    pub segment_objectives: Option<BTreeMap<String, f64>>,
    pub threshold_ms: Option<f64>,
    pub targets: Option<BTreeMap<String, String>>,
    pub segment_targets: Option<BTreeMap<String, BTreeMap<String, String>>>,
}

/// One `[[exclusions]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawExclusion {
    pub name: Option<String>,
    pub from: Option<DateText>,
    pub to: Option<DateText>,
    pub slos: Option<Vec<String>>,
    pub customers: Option<Vec<String>>,
    pub segments: Option<Vec<String>>,
    pub reason: Option<String>,
}

/// One `[[credits]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCredit {
    pub slo: Option<String>,
    pub tiers: Option<Vec<RawCreditTier>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub struct RawCreditTier {
    pub below: Option<f64>,
    pub percent: Option<f64>,
}

/// A date or timestamp: a string, or a TOML date / date-time written without
/// quotes (`from = 2026-11-07T22:00:00Z`, `holidays = [2026-12-24]`), as its text.
#[derive(Debug)]
pub struct DateText(pub String);

impl<'de> Deserialize<'de> for DateText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(DateText(s)),
            Value::Datetime(dt) => Ok(DateText(dt.to_string())),
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected a date or timestamp string",
                other.type_str()
            ))),
        }
    }
}

/// A librdkafka property value: a string, or a number or boolean written
/// without quotes (`"linger.ms" = 5`), as its text.
#[derive(Debug)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            v @ (Value::Integer(_) | Value::Float(_) | Value::Boolean(_)) => {
                Ok(Scalar(v.to_string()))
            }
            other => Err(D::Error::custom(format!(
                "invalid type: {}, expected a string, number or boolean",
                other.type_str()
            ))),
        }
    }
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a key path the way a user finds it in the file:
/// `kafka.topics.tickets`, `slos[2].targets.P1`, `kafka.properties."sasl.username"`.
pub fn path_string(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(k));
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A TOML key as written in a path: bare when TOML allows it, quoted otherwise.
pub fn quote_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn join(prefix: &str, segs: &[Seg]) -> String {
    format!("{prefix}{}", path_string(segs))
}

/// The document holding only `leaf` at `segs` (an index becomes a one-element
/// array), to ask serde about one key in isolation.
fn wrap(segs: &[Seg], leaf: Value) -> Value {
    segs.iter().rev().fold(leaf, |inner, seg| match seg {
        Seg::Key(k) => {
            let mut t = Table::new();
            t.insert(k.clone(), inner);
            Value::Table(t)
        }
        Seg::Index(_) => Value::Array(vec![inner]),
    })
}

fn accepts<T: DeserializeOwned>(segs: &[Seg], leaf: Value) -> Result<(), toml::de::Error> {
    T::deserialize(wrap(segs, leaf)).map(|_| ())
}

/// A serde message in the words of the configuration format.
fn message(e: &toml::de::Error) -> String {
    let m = e.message();
    if let Some(rest) = m.strip_prefix("unknown field `") {
        return match rest.split_once("`, ") {
            Some((_, expected)) if !expected.starts_with("there are no") => {
                format!("unknown key; {expected}")
            }
            _ => "unknown key".to_string(),
        };
    }
    if m.starts_with("invalid type: map, expected a sequence") {
        return "invalid type: table, expected an array (an array of tables is written with \
                double brackets, e.g. [[slos]])"
            .to_string();
    }
    m.replace("invalid type: map", "invalid type: table")
        .replace("invalid type: sequence", "invalid type: array")
        .replace("expected f64", "expected a number")
        .replace("a sequence", "an array")
        .replace("a map", "a table")
}

/// Deserializes `root` as `T`, reporting every unknown key and wrongly typed value
/// (with its path, after `prefix`) instead of the first one only. The result is
/// built from what is left once the bad keys are dropped, so that the validation
/// pass can still check the rest; `None` only if even that fails.
pub fn lenient<T: DeserializeOwned>(
    root: Table,
    prefix: &str,
    problems: &mut Problems,
) -> Option<T> {
    let mut root = Value::Table(root);
    if let Ok(t) = T::deserialize(root.clone()) {
        return Some(t);
    }
    let mut bad = Vec::new();
    probe_children::<T>(&root, &mut Vec::new(), &mut bad, prefix, problems);
    // Highest index first, so that removing an array element does not shift the
    // ones still to remove.
    bad.sort();
    for segs in bad.iter().rev() {
        prune::<T>(&mut root, segs);
    }
    match T::deserialize(root) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(prefix.trim_end_matches(':'), message(&e));
            None
        }
    }
}

/// Probes each child of `node` (at `path`); returns how many problems it reported.
fn probe_children<T: DeserializeOwned>(
    node: &Value,
    path: &mut Vec<Seg>,
    bad: &mut Vec<Vec<Seg>>,
    prefix: &str,
    problems: &mut Problems,
) -> usize {
    let mut reported = 0;
    match node {
        Value::Table(t) => {
            for (k, v) in t {
                path.push(Seg::Key(k.clone()));
                reported += probe::<T>(v, path, bad, prefix, problems);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                reported += probe::<T>(v, path, bad, prefix, problems);
                path.pop();
            }
        }
        _ => {}
    }
    reported
}

/// Checks `node`, the value at `path`, alone. When it is rejected but a container
/// of its kind is accepted there, the fault is further down: look for it in the
/// children, so the problem is reported at the deepest key that causes it.
fn probe<T: DeserializeOwned>(
    node: &Value,
    path: &mut Vec<Seg>,
    bad: &mut Vec<Vec<Seg>>,
    prefix: &str,
    problems: &mut Problems,
) -> usize {
    let Err(e) = accepts::<T>(path, node.clone()) else {
        return 0;
    };
    let empty = match node {
        Value::Table(t) if !t.is_empty() => Some(Value::Table(Table::new())),
        Value::Array(a) if !a.is_empty() => Some(Value::Array(Vec::new())),
        _ => None,
    };
    if let Some(empty) = empty {
        if accepts::<T>(path, empty).is_ok() {
            let n = probe_children::<T>(node, path, bad, prefix, problems);
            if n > 0 {
                return n;
            }
        }
    }
    problems.push(join(prefix, path), message(&e));
    bad.push(path.clone());
    1
}

/// Drops the value at `segs`. An array element is replaced by an empty table when
/// that is acceptable (an `[[slos]]` entry of the wrong type), so that the indices
/// of its siblings, and the paths reported for them, do not move.
fn prune<T: DeserializeOwned>(root: &mut Value, segs: &[Seg]) {
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    let mut cur = root;
    for seg in parents {
        let next = match (cur, seg) {
            (Value::Table(t), Seg::Key(k)) => t.get_mut(k),
            (Value::Array(a), Seg::Index(i)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    match (cur, last) {
        (Value::Table(t), Seg::Key(k)) => {
            t.remove(k);
        }
        (Value::Array(a), Seg::Index(i)) if *i < a.len() => {
            if accepts::<T>(segs, Value::Table(Table::new())).is_ok() {
                a[*i] = Value::Table(Table::new());
            } else {
                a.remove(*i);
            }
        }
        _ => {}
    }
}

/// Environment variables read as configuration overrides.
pub const ENV_PREFIX: &str = "SLASTREAM__";

/// Merges every `SLASTREAM__A__B__C=value` of `env` into `root` at key path
/// `a.b.c` (lowercased; a number selects an element of an array of tables, e.g.
/// `SLASTREAM__SLOS__0__OBJECTIVE`). In `kafka.properties`, whose librdkafka
/// names contain dots that a shell variable cannot, `_` stands for `.`
/// (`SLASTREAM__KAFKA__PROPERTIES__SASL_PASSWORD` sets `sasl.password`).
///
/// The value stays the plain string when the key takes a string (so
/// `SLASTREAM__HTTP__ADMIN_TOKEN=12345` is the token "12345"), and is read as a
/// TOML value (`true`, `42`, `0.5`, `["a","b"]`) otherwise. Returns the key path
/// and variable name of each override.
pub fn apply_env(
    root: &mut Table,
    env: &[(String, String)],
    problems: &mut Problems,
) -> Vec<(String, String)> {
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    let mut doc = Value::Table(std::mem::take(root));
    let mut applied = Vec::new();
    for (name, value) in vars {
        match set_override(&mut doc, &name[ENV_PREFIX.len()..], value) {
            Ok(path) => applied.push((path, name.clone())),
            Err(msg) => problems.push(name.clone(), msg),
        }
    }
    if let Value::Table(t) = doc {
        *root = t;
    }
    applied
}

fn set_override(doc: &mut Value, rest: &str, text: &str) -> Result<String, String> {
    let words: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
    if words.iter().any(String::is_empty) {
        return Err(format!(
            "malformed override: expected {ENV_PREFIX}SECTION__KEY, parts separated by `__`"
        ));
    }
    let mut segs = Vec::new();
    let mut cur = doc;
    for (n, word) in words.iter().enumerate() {
        let last = n + 1 == words.len();
        let slot = match cur {
            Value::Table(t) => {
                let in_properties =
                    segs == [Seg::Key("kafka".into()), Seg::Key("properties".into())];
                let key = if in_properties && !word.contains('.') {
                    word.replace('_', ".")
                } else {
                    word.clone()
                };
                segs.push(Seg::Key(key.clone()));
                t.entry(key).or_insert_with(|| Value::Table(Table::new()))
            }
            Value::Array(a) => {
                let len = a.len();
                let i = word.parse::<usize>().ok().filter(|i| *i < len).ok_or_else(|| {
                    format!(
                        "`{}` is an array of {len} entries: the next part must be an index below {len}, not `{word}`",
                        path_string(&segs)
                    )
                })?;
                segs.push(Seg::Index(i));
                &mut a[i]
            }
            other => {
                return Err(format!(
                    "`{}` is a {}, not a table: cannot set a key inside it",
                    path_string(&segs),
                    other.type_str()
                ))
            }
        };
        if last {
            *slot = env_value(&segs, text);
            return Ok(path_string(&segs));
        }
        cur = slot;
    }
    Err(format!(
        "malformed override: expected {ENV_PREFIX}SECTION__KEY"
    ))
}

/// The plain string if the key accepts one (so a string key keeps `12345` as
/// text); else the TOML reading of `text` (`true`, `0.5`, `["a"]`) when there is
/// one, for the key to accept or for validation to report; else the string.
fn env_value(segs: &[Seg], text: &str) -> Value {
    let string = Value::String(text.to_string());
    if accepts::<RawConfig>(segs, string.clone()).is_ok() {
        return string;
    }
    text.trim().parse::<Value>().unwrap_or(string)
}
