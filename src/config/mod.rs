//! Configuration (SPEC §2): reads the TOML file, applies `SLASTREAM__*`
//! environment overrides, and validates everything into a [`Config`].
//!
//! Three passes, each reporting every problem it finds rather than the first:
//! `raw::apply_env` merges overrides into the TOML tree; `raw::lenient` turns the
//! tree into the serde structs of `raw` (unknown keys, wrong types); the checks in
//! this file turn those into the validated types of `types` and `model::slo`
//! (durations, zones, intervals, ranges, references). A `Config` is returned only
//! when no pass found a problem.

mod raw;
mod types;

pub use types::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::model::slo::{
    parse_priority, parse_severity, CalendarDef, ClockKind, CreditPolicy, CreditTier, CustomerDef,
    Exclusion, Indicator, Level, SloDef, SloTerms, SloVersion, SloWindow, Targets, PRIORITIES,
    SEVERITIES,
};
use crate::model::time::{parse_duration, parse_rfc3339, Millis, DAY, MINUTE, SECOND};

use raw::{
    quote_key, DateText, RawAlerting, RawCalendar, RawCluster, RawConfig, RawCredit, RawCustomer,
    RawCustomersFile, RawExclusion, RawHttp, RawIngest, RawKafka, RawLimits, RawSlo, RawSloVersion,
    RawState, RawToken,
};

/// The built-in calendar containing every instant; the default of `calendar`.
pub const ALWAYS: &str = "24x7";

/// Reads FILE, applies SLASTREAM__* overrides from the process environment, validates.
///
/// Relative `customers_files` resolve against the directory of FILE.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        problems: vec![Problem {
            path: path.display().to_string(),
            message: format!("cannot read the configuration file: {e}"),
        }],
    })?;
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .filter(|(k, _)| k.starts_with(raw::ENV_PREFIX))
        .collect();
    let base_dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    parse(&text, &env, base_dir)
}

/// Same from text, with an explicit environment (tests pass their own) and the directory
/// relative to which `customers_files` are resolved.
pub fn parse(text: &str, env: &[(String, String)], base_dir: &Path) -> Result<Config, ConfigError> {
    let mut table = toml::from_str::<toml::Table>(text).map_err(|e| ConfigError {
        problems: vec![syntax_problem("", text, &e)],
    })?;
    let mut problems = Problems::default();
    let overrides = raw::apply_env(&mut table, env, &mut problems);
    let config = raw::lenient::<RawConfig>(table, "", &mut problems)
        .map(|raw| validate(raw, base_dir, &mut problems));
    let mut list = problems.0;
    for problem in &mut list {
        let var = overrides
            .iter()
            .find(|(path, _)| is_within(&problem.path, path) || is_within(path, &problem.path));
        if let Some((_, var)) = var {
            problem
                .message
                .push_str(&format!(" (set by environment variable {var})"));
        }
    }
    match config {
        Some(config) if list.is_empty() => Ok(config),
        _ if list.is_empty() => Err(ConfigError {
            problems: vec![Problem {
                path: String::new(),
                message: "invalid configuration".into(),
            }],
        }),
        _ => Err(ConfigError { problems: list }),
    }
}

/// Defaults only (no SLOs), for `replay`/`demo` without a file.
impl Default for Config {
    fn default() -> Self {
        Config {
            kafka: KafkaConfig {
                brokers: "127.0.0.1:9092".to_string(),
                group_id: "slastream".to_string(),
                topics: TopicsConfig {
                    tickets: "sla.tickets".to_string(),
                    incidents: "sla.incidents".to_string(),
                    probes: "sla.probes".to_string(),
                    alerts: "sla.alerts".to_string(),
                    dead_letter: "sla.dlq".to_string(),
                },
                properties: BTreeMap::new(),
            },
            state: StateConfig {
                path: PathBuf::from("./data"),
                commit_interval: SECOND,
                block_cache: 64 << 20,
                write_buffer: 32 << 20,
                hot_window: 0,
            },
            http: HttpConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
                admin_token: String::new(),
                read_auth: false,
                tokens: Vec::new(),
            },
            limits: LimitsConfig::default(),
            ingest: IngestConfig {
                max_lateness: 7 * DAY,
                max_future_skew: 5 * MINUTE,
            },
            alerting: AlertingConfig {
                alertmanager_urls: Vec::new(),
                webhook_urls: Vec::new(),
                kafka: true,
                resend_interval: MINUTE,
                warn_at: 0.75,
                per_customer_burn_alerts: false,
                forecast_horizon: 3 * DAY,
            },
            export: ExportConfig {
                per_customer: false,
            },
            customers: Vec::new(),
            calendars: BTreeMap::from([(ALWAYS.to_string(), CalendarDef::always())]),
            slos: Vec::new(),
            exclusions: Vec::new(),
            credits: Vec::new(),
        }
    }
}

/// Every problem found in a configuration; `Display` lists them one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path (`slos[2].targets.P1`); for a file of `customers_files` prefixed
    /// with that file (`customers.toml:customers[0].timezone`); the variable name
    /// for a malformed override; `line L, column C` for a TOML syntax error.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!(
        "invalid configuration: {n} problem{}",
        if n == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// The problems found so far. One problem per line of keys: a later one at the
/// same path as, below or above an already reported one is a consequence (a
/// value dropped for its type is then "missing", a table emptied of its only bad
/// entry is then "empty") and is not repeated.
#[derive(Debug, Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        if self
            .0
            .iter()
            .any(|p| is_within(&path, &p.path) || is_within(&p.path, &path))
        {
            return;
        }
        self.0.push(Problem {
            path,
            message: message.into(),
        });
    }
}

/// Whether key path `path` is `ancestor` or lies below it.
fn is_within(path: &str, ancestor: &str) -> bool {
    match path.strip_prefix(ancestor) {
        Some("") => true,
        Some(rest) => !ancestor.is_empty() && (rest.starts_with('.') || rest.starts_with('[')),
        None => false,
    }
}

fn syntax_problem(file: &str, text: &str, e: &toml::de::Error) -> Problem {
    let at = e
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}")
        });
    let path = match (file, at) {
        ("", Some(at)) => at,
        ("", None) => String::new(),
        (file, Some(at)) => format!("{file}:{at}"),
        (file, None) => file.to_string(),
    };
    Problem {
        path,
        message: format!("invalid TOML: {}", e.message().trim()),
    }
}

// ---------------------------------------------------------------------------
// Validation: raw -> validated. Each function checks everything it can before
// giving up on its item, so that independent problems are all reported.

fn validate(raw: RawConfig, base_dir: &Path, p: &mut Problems) -> Config {
    let defaults = Config::default();
    let kafka = kafka(raw.kafka, defaults.kafka, p);
    let state = state(raw.state, defaults.state, p);
    let http = http(raw.http, defaults.http, p);
    let limits = limits(raw.limits, defaults.limits, p);
    let ingest = ingest(raw.ingest, defaults.ingest, p);
    let alerting = alerting(raw.alerting, defaults.alerting, p);
    let export = ExportConfig {
        per_customer: raw
            .export
            .per_customer
            .unwrap_or(defaults.export.per_customer),
    };
    cluster(raw.cluster, p);

    // References are checked against the names as written, so that a calendar
    // or SLO with a problem of its own does not also make every user "dangling".
    let calendar_names: BTreeSet<String> = raw
        .calendars
        .keys()
        .cloned()
        .chain([ALWAYS.to_string()])
        .collect();
    let calendars = calendars(raw.calendars, p);

    let mut registry = Registry {
        calendar_names: &calendar_names,
        seen: HashMap::new(),
        out: Vec::new(),
    };
    for (i, c) in raw.customers.into_iter().enumerate() {
        registry.add(c, &format!("customers[{i}]"), p);
    }
    for (i, file) in raw.customers_files.iter().enumerate() {
        customers_file(
            file,
            &format!("customers_files[{i}]"),
            base_dir,
            &mut registry,
            p,
        );
    }
    let customers = registry.out;
    registry_within_limits(&customers, &limits, p);

    let slo_names: BTreeSet<String> = raw.slos.iter().filter_map(|s| s.name.clone()).collect();
    let mut seen_slos = HashMap::new();
    let slos = raw
        .slos
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| slo(s, &format!("slos[{i}]"), &mut seen_slos, p))
        .collect();
    let exclusions = raw
        .exclusions
        .into_iter()
        .enumerate()
        .filter_map(|(i, x)| exclusion(x, &format!("exclusions[{i}]"), &slo_names, p))
        .collect();
    let mut seen_credits = HashMap::new();
    let credits = raw
        .credits
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| {
            credit(
                c,
                &format!("credits[{i}]"),
                &slo_names,
                &mut seen_credits,
                p,
            )
        })
        .collect();

    Config {
        kafka,
        state,
        http,
        limits,
        ingest,
        alerting,
        export,
        customers,
        calendars,
        slos,
        exclusions,
        credits,
    }
}

fn required<T>(value: Option<T>, path: &str, p: &mut Problems) -> Option<T> {
    if value.is_none() {
        p.push(path, "required key is missing");
    }
    value
}

fn non_empty(value: String, path: &str, p: &mut Problems) -> Option<String> {
    if value.trim().is_empty() {
        p.push(path, "must not be empty");
        None
    } else {
        Some(value)
    }
}

/// A `<n><unit>` duration greater than zero.
fn positive_duration(text: &str, path: &str, p: &mut Problems) -> Option<Millis> {
    match parse_duration(text) {
        Some(ms) if ms > 0 => Some(ms),
        Some(_) => {
            p.push(path, format!("duration `{text}` must be positive"));
            None
        }
        None => {
            p.push(
                path,
                format!(
                    "invalid duration `{text}`: expected <n><unit> with units s, m, h, d, \
                     e.g. \"90s\", \"15m\", \"1h30m\", \"7d\""
                ),
            );
            None
        }
    }
}

/// An IANA zone name, returned in its canonical spelling.
fn zone(name: &str, path: &str, p: &mut Problems) -> Option<String> {
    match jiff::tz::TimeZone::get(name) {
        Ok(tz) => Some(tz.iana_name().unwrap_or(name).to_string()),
        Err(_) => {
            p.push(
                path,
                format!(
                    "unknown time zone `{name}`: expected an IANA name such as \
                     Europe/Berlin, America/New_York or UTC"
                ),
            );
            None
        }
    }
}

/// A ratio strictly between 0 and 1 (objectives).
fn ratio(value: f64, path: &str, p: &mut Problems) -> Option<f64> {
    if value > 0.0 && value < 1.0 {
        Some(value)
    } else {
        p.push(
            path,
            format!("{value} is out of range: must be between 0 and 1 (exclusive), e.g. 0.999"),
        );
        None
    }
}

fn kafka(raw: RawKafka, d: KafkaConfig, p: &mut Problems) -> KafkaConfig {
    let mut text = |v: Option<String>, default: String, path: &str| {
        non_empty(v.unwrap_or(default.clone()), path, p).unwrap_or(default)
    };
    let brokers = text(raw.brokers, d.brokers, "kafka.brokers");
    let group_id = text(raw.group_id, d.group_id, "kafka.group_id");
    let mut topic = |v: Option<String>, default: String, key: &str| {
        let path = format!("kafka.topics.{key}");
        let name = v.unwrap_or(default);
        let valid = !name.is_empty()
            && name.len() <= 249
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            p.push(
                &path,
                format!("invalid topic name `{name}`: 1 to 249 of a-z, A-Z, 0-9, `.`, `_`, `-`"),
            );
        }
        name
    };
    let topics = TopicsConfig {
        tickets: topic(raw.topics.tickets, d.topics.tickets, "tickets"),
        incidents: topic(raw.topics.incidents, d.topics.incidents, "incidents"),
        probes: topic(raw.topics.probes, d.topics.probes, "probes"),
        alerts: topic(raw.topics.alerts, d.topics.alerts, "alerts"),
        dead_letter: topic(raw.topics.dead_letter, d.topics.dead_letter, "dead_letter"),
    };
    // Reading our own output back would loop (one input topic for all kinds is fine).
    let inputs = [&topics.tickets, &topics.incidents, &topics.probes];
    for (key, out) in [
        ("alerts", &topics.alerts),
        ("dead_letter", &topics.dead_letter),
    ] {
        if inputs.contains(&out) {
            p.push(
                format!("kafka.topics.{key}"),
                format!("`{out}` is also an input topic: outputs must differ from tickets, incidents and probes"),
            );
        }
    }
    for key in raw.properties.keys() {
        if key.trim().is_empty() {
            p.push(
                format!("kafka.properties.{}", quote_key(key)),
                "empty property name",
            );
        }
    }
    KafkaConfig {
        brokers,
        group_id,
        topics,
        properties: raw.properties.into_iter().map(|(k, v)| (k, v.0)).collect(),
    }
}

/// The longest `state.commit_interval`: beyond it a crash would make a
/// restart redo minutes of input, and a rebalance wait as long.
pub const MAX_COMMIT_INTERVAL: Millis = MINUTE;

fn state(raw: RawState, d: StateConfig, p: &mut Problems) -> StateConfig {
    let path = match raw.path {
        None => d.path,
        Some(path) => non_empty(path, "state.path", p).map_or(d.path, PathBuf::from),
    };
    let commit_interval = match raw.commit_interval {
        None => d.commit_interval,
        Some(text) => match positive_duration(&text, "state.commit_interval", p) {
            Some(ms) if ms > MAX_COMMIT_INTERVAL => {
                p.push(
                    "state.commit_interval",
                    format!("`{text}` is longer than the longest interval, 1m"),
                );
                d.commit_interval
            }
            Some(ms) => ms,
            None => d.commit_interval,
        },
    };
    let size = |text: Option<String>, key: &str, min: u64, default: u64, p: &mut Problems| {
        let Some(text) = text else { return default };
        match parse_size(&text) {
            Some(n) if n >= min => n,
            Some(_) => {
                p.push(
                    key,
                    format!("`{text}` is below the least size, {}", format_size(min)),
                );
                default
            }
            None => {
                p.push(
                    key,
                    format!(
                        "invalid size `{text}`: expected bytes or <n><unit> with units KiB, MiB, \
                         GiB, e.g. \"64MiB\""
                    ),
                );
                default
            }
        }
    };
    StateConfig {
        path,
        commit_interval,
        block_cache: size(
            raw.block_cache,
            "state.block_cache",
            1 << 20,
            d.block_cache,
            p,
        ),
        write_buffer: size(
            raw.write_buffer,
            "state.write_buffer",
            1 << 20,
            d.write_buffer,
            p,
        ),
        hot_window: match raw.hot_window {
            None => d.hot_window,
            Some(text) => parse_duration(&text).unwrap_or_else(|| {
                p.push(
                    "state.hot_window",
                    format!("invalid duration `{text}`: expected <n><unit>, e.g. \"2d\""),
                );
                d.hot_window
            }),
        },
    }
}

/// `[cluster]` of SPEC §8: its values are checked, and running several
/// instances as one is refused: this build runs one instance, which owns
/// every partition (a second instance in the same group is fenced or
/// stays unready, see README "Running on Kafka").
fn cluster(raw: RawCluster, p: &mut Problems) {
    if let Some(t) = raw.tasks {
        if !(1..=4096).contains(&t) {
            p.push("cluster.tasks", format!("{t} is out of range 1..=4096"));
        }
    }
    if let Some(name) = raw.instance.as_deref() {
        if name.len() > 249 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.push(
                "cluster.instance",
                format!("`{name}` must be at most 249 characters without spaces"),
            );
        }
    }
    if let Some(url) = raw.advertise_url.as_deref().filter(|u| !u.is_empty()) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            p.push(
                "cluster.advertise_url",
                format!("`{url}` is not an http:// or https:// URL"),
            );
        }
    }
    if raw.enabled == Some(true) {
        p.push(
            "cluster.enabled",
            "cluster mode is not available in this version: run one instance per consumer \
             group (cluster.enabled = false)",
        );
    }
}

/// A size in bytes: a number alone, or with a unit `KiB`, `MiB` or `GiB`
/// (also `KB`, `MB`, `GB`, read as the same powers of two).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" | "KB" | "K" => 10,
        "MiB" | "MB" | "M" => 20,
        "GiB" | "GB" | "G" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// A size for messages, in the largest unit it is a whole number of.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

fn http(raw: RawHttp, d: HttpConfig, p: &mut Problems) -> HttpConfig {
    let listen = match raw.listen {
        None => d.listen,
        Some(text) => text.trim().parse::<SocketAddr>().unwrap_or_else(|_| {
            p.push(
                "http.listen",
                format!("invalid listen address `{text}`: expected IP:PORT, e.g. 127.0.0.1:9464 or [::]:9464"),
            );
            d.listen
        }),
    };
    let mut names = HashMap::new();
    let mut hashes = HashMap::new();
    let tokens = raw
        .tokens
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| token(t, &format!("http.tokens[{i}]"), &mut names, &mut hashes, p))
        .collect();
    HttpConfig {
        listen,
        admin_token: raw.admin_token.unwrap_or(d.admin_token),
        read_auth: raw.read_auth.unwrap_or(d.read_auth),
        tokens,
    }
}

/// One `[[http.tokens]]` entry: a unique name, a SHA-256 in hex (never the
/// token), a known role, and customers exactly when the role is `customer`.
fn token(
    raw: RawToken,
    path: &str,
    names: &mut HashMap<String, String>,
    hashes: &mut HashMap<[u8; 32], String>,
    p: &mut Problems,
) -> Option<TokenDef> {
    let name = match raw.name {
        None => {
            p.push(format!("{path}.name"), "missing: every token needs a name");
            None
        }
        Some(n) => non_empty(n, &format!("{path}.name"), p),
    };
    if let Some(n) = &name {
        if let Some(first) = names.insert(n.clone(), path.to_string()) {
            p.push(
                format!("{path}.name"),
                format!("duplicate token name `{n}` (also {first})"),
            );
        }
    }
    let sha256 = match raw.token_sha256 {
        None => {
            p.push(
                format!("{path}.token_sha256"),
                "missing: the SHA-256 of the token, 64 hex digits (e.g. from `sha256sum`)",
            );
            None
        }
        Some(text) => match parse_sha256(&text) {
            Some(h) => Some(h),
            None => {
                p.push(
                    format!("{path}.token_sha256"),
                    "must be a SHA-256 in hex: exactly 64 digits 0-9 a-f (the hash, never the token)",
                );
                None
            }
        },
    };
    if let Some(h) = sha256 {
        if let Some(first) = hashes.insert(h, path.to_string()) {
            p.push(
                format!("{path}.token_sha256"),
                format!("the same token as {first}"),
            );
        }
    }
    let role = match raw.role.as_deref() {
        None => {
            p.push(
                format!("{path}.role"),
                "missing: one of \"admin\", \"viewer\", \"customer\"",
            );
            None
        }
        Some("admin") => Some(Role::Admin),
        Some("viewer") => Some(Role::Viewer),
        Some("customer") => Some(Role::Customer),
        Some(other) => {
            p.push(
                format!("{path}.role"),
                format!("unknown role `{other}`: one of \"admin\", \"viewer\", \"customer\""),
            );
            None
        }
    };
    let customers = match (role, raw.customers) {
        (Some(Role::Customer), None) => {
            p.push(
                format!("{path}.customers"),
                "missing: a token of role \"customer\" lists the customers it may read",
            );
            None
        }
        (Some(Role::Customer), Some(list)) if list.is_empty() => {
            p.push(
                format!("{path}.customers"),
                "must not be empty for role \"customer\"",
            );
            None
        }
        (Some(Role::Customer), Some(list)) => {
            let mut ok = true;
            for (i, c) in list.iter().enumerate() {
                if c.trim().is_empty() {
                    p.push(format!("{path}.customers[{i}]"), "must not be empty");
                    ok = false;
                }
            }
            ok.then_some(list)
        }
        (Some(r), Some(_)) => {
            p.push(
                format!("{path}.customers"),
                format!(
                    "only for role \"customer\": a token of role \"{}\" reads every customer",
                    r.as_str()
                ),
            );
            None
        }
        (_, None) => Some(Vec::new()),
        (None, Some(_)) => None,
    };
    Some(TokenDef {
        name: name?,
        sha256: sha256?,
        role: role?,
        customers: customers?,
    })
}

/// 64 hex digits (either case) into 32 bytes.
fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn limits(raw: RawLimits, d: LimitsConfig, p: &mut Problems) -> LimitsConfig {
    let mut bound = |v: Option<i64>, default: usize, key: &str| match v {
        None => default,
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            p.push(
                format!("limits.{key}"),
                format!("{n} is out of range: must be at least 1"),
            );
            default
        }
    };
    LimitsConfig {
        max_customers: bound(raw.max_customers, d.max_customers, "max_customers"),
        max_groups: bound(raw.max_groups, d.max_groups, "max_groups"),
        max_services: bound(raw.max_services, d.max_services, "max_services"),
    }
}

/// The registry alone must fit the bounds events are held to, or no event
/// could name a new customer and the limit would say nothing true.
fn registry_within_limits(customers: &[CustomerDef], limits: &LimitsConfig, p: &mut Problems) {
    if customers.len() > limits.max_customers {
        p.push(
            "limits.max_customers",
            format!(
                "{} is below the {} customers of the registry",
                limits.max_customers,
                customers.len()
            ),
        );
    }
    let groups: BTreeSet<(&str, &str)> = customers
        .iter()
        .map(|c| (c.segment.as_str(), c.timezone.as_str()))
        .collect();
    if groups.len() > limits.max_groups {
        p.push(
            "limits.max_groups",
            format!(
                "{} is below the {} (segment, timezone) pairs of the registry",
                limits.max_groups,
                groups.len()
            ),
        );
    }
}

fn ingest(raw: RawIngest, d: IngestConfig, p: &mut Problems) -> IngestConfig {
    let mut dur = |v: Option<String>, default: Millis, path: &str| {
        v.and_then(|v| positive_duration(&v, path, p))
            .unwrap_or(default)
    };
    IngestConfig {
        max_lateness: dur(raw.max_lateness, d.max_lateness, "ingest.max_lateness"),
        max_future_skew: dur(
            raw.max_future_skew,
            d.max_future_skew,
            "ingest.max_future_skew",
        ),
    }
}

fn alerting(raw: RawAlerting, d: AlertingConfig, p: &mut Problems) -> AlertingConfig {
    let mut urls = |v: Option<Vec<String>>, default: Vec<String>, key: &str| {
        let urls = v.unwrap_or(default);
        for (i, url) in urls.iter().enumerate() {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| r.trim().is_empty()) {
                p.push(
                    format!("alerting.{key}[{i}]"),
                    format!("`{url}` is not an http:// or https:// URL"),
                );
            }
        }
        urls
    };
    let alertmanager_urls = urls(
        raw.alertmanager_urls,
        d.alertmanager_urls,
        "alertmanager_urls",
    );
    let webhook_urls = urls(raw.webhook_urls, d.webhook_urls, "webhook_urls");
    let resend_interval = raw
        .resend_interval
        .and_then(|v| positive_duration(&v, "alerting.resend_interval", p))
        .unwrap_or(d.resend_interval);
    let warn_at = match raw.warn_at {
        Some(w) if !(w > 0.0 && w <= 1.0) => {
            p.push(
                "alerting.warn_at",
                format!(
                    "{w} is out of range: must be a fraction of the target in (0, 1], e.g. 0.75"
                ),
            );
            d.warn_at
        }
        Some(w) => w,
        None => d.warn_at,
    };
    AlertingConfig {
        alertmanager_urls,
        webhook_urls,
        kafka: raw.kafka.unwrap_or(d.kafka),
        resend_interval,
        warn_at,
        per_customer_burn_alerts: raw
            .per_customer_burn_alerts
            .unwrap_or(d.per_customer_burn_alerts),
        forecast_horizon: raw
            .forecast_horizon
            .and_then(|v| positive_duration(&v, "alerting.forecast_horizon", p))
            .unwrap_or(d.forecast_horizon),
    }
}

// --- customers and calendars ------------------------------------------------

/// The customer registry being built: ids seen (with where), in file order.
struct Registry<'a> {
    calendar_names: &'a BTreeSet<String>,
    seen: HashMap<String, String>,
    out: Vec<CustomerDef>,
}

impl Registry<'_> {
    fn add(&mut self, c: RawCustomer, at: &str, p: &mut Problems) {
        let id_path = format!("{at}.id");
        let id = required(c.id, &id_path, p).and_then(|id| non_empty(id, &id_path, p));
        if let Some(id) = &id {
            match self.seen.get(id) {
                Some(first) => p.push(
                    &id_path,
                    format!("duplicate customer id `{id}` (first defined at {first})"),
                ),
                None => {
                    self.seen.insert(id.clone(), at.to_string());
                }
            }
        }
        let segment_path = format!("{at}.segment");
        let segment =
            required(c.segment, &segment_path, p).and_then(|s| non_empty(s, &segment_path, p));
        let zone_path = format!("{at}.timezone");
        let timezone = required(c.timezone, &zone_path, p).and_then(|z| zone(&z, &zone_path, p));
        let calendar = c.calendar.unwrap_or_else(|| ALWAYS.to_string());
        let calendar_ok = self.calendar_names.contains(&calendar);
        if !calendar_ok {
            let known: Vec<&str> = self.calendar_names.iter().map(String::as_str).collect();
            p.push(
                format!("{at}.calendar"),
                format!(
                    "unknown calendar `{calendar}`; defined: {}",
                    known.join(", ")
                ),
            );
        }
        if let (Some(id), Some(segment), Some(timezone), true) =
            (id, segment, timezone, calendar_ok)
        {
            self.out.push(CustomerDef {
                id,
                segment,
                timezone,
                calendar,
            });
        }
    }
}

/// A file of `customers_files`: `[[customers]]` only, relative to `base_dir`.
fn customers_file(
    file: &str,
    at: &str,
    base_dir: &Path,
    registry: &mut Registry<'_>,
    p: &mut Problems,
) {
    let full = base_dir.join(file);
    let text = match std::fs::read_to_string(&full) {
        Ok(text) => text,
        Err(e) => {
            p.push(at, format!("cannot read `{}`: {e}", full.display()));
            return;
        }
    };
    let table = match toml::from_str::<toml::Table>(&text) {
        Ok(table) => table,
        Err(e) => {
            let problem = syntax_problem(file, &text, &e);
            p.push(problem.path, problem.message);
            return;
        }
    };
    let prefix = format!("{file}:");
    if let Some(raw) = raw::lenient::<RawCustomersFile>(table, &prefix, p) {
        for (i, c) in raw.customers.into_iter().enumerate() {
            registry.add(c, &format!("{prefix}customers[{i}]"), p);
        }
    }
}

fn calendars(
    raw: BTreeMap<String, RawCalendar>,
    p: &mut Problems,
) -> BTreeMap<String, CalendarDef> {
    let mut out = BTreeMap::new();
    for (name, c) in raw {
        let at = format!("calendars.{}", quote_key(&name));
        if name == ALWAYS {
            p.push(
                at,
                "`24x7` is built in (every instant is business time) and cannot be redefined",
            );
            continue;
        }
        if let Some(def) = calendar(name, c, &at, p) {
            out.insert(def.name.clone(), def);
        }
    }
    out.insert(ALWAYS.to_string(), CalendarDef::always());
    out
}

fn calendar(name: String, c: RawCalendar, at: &str, p: &mut Problems) -> Option<CalendarDef> {
    let mut ok = true;
    let timezone = match &c.timezone {
        None => None,
        Some(z) => {
            let z = zone(z, &format!("{at}.timezone"), p);
            ok &= z.is_some();
            z
        }
    };
    let mut week: [Vec<(u16, u16)>; 7] = Default::default();
    for (day, (key, list)) in c.week().into_iter().enumerate() {
        let mut intervals = Vec::new();
        for (i, text) in list.into_iter().flatten().enumerate() {
            match parse_interval(text) {
                Ok(interval) => intervals.push(interval),
                Err(msg) => {
                    p.push(format!("{at}.{key}[{i}]"), msg);
                    ok = false;
                }
            }
        }
        week[day] = merge_intervals(intervals);
    }
    if ok && week.iter().all(Vec::is_empty) {
        p.push(
            at,
            "no business hours: every weekday is closed; list intervals under mon..sun, \
             e.g. mon = [\"09:00-17:00\"]",
        );
        ok = false;
    }
    let mut holidays = BTreeSet::new();
    for (i, text) in c.holidays.iter().flatten().map(|d| &d.0).enumerate() {
        match parse_date(text) {
            Some(date) => {
                holidays.insert(date);
            }
            None => {
                p.push(
                    format!("{at}.holidays[{i}]"),
                    format!("invalid date `{text}`: expected YYYY-MM-DD, e.g. 2026-12-24"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(CalendarDef {
        name,
        timezone,
        week,
        holidays,
    })
}

/// `"HH:MM-HH:MM"` as minutes after local midnight, `0 <= start < end <= 1440`.
fn parse_interval(text: &str) -> Result<(u16, u16), String> {
    let malformed = || {
        format!("invalid interval `{text}`: expected \"HH:MM-HH:MM\" with 00:00 <= start < end <= 24:00, e.g. \"09:00-17:00\"")
    };
    let (a, b) = text.split_once('-').ok_or_else(malformed)?;
    let start = parse_hhmm(a.trim()).ok_or_else(malformed)?;
    let end = parse_hhmm(b.trim()).ok_or_else(malformed)?;
    if end < start {
        return Err(format!(
            "interval `{text}` ends before it starts: overnight shifts are written as two \
             intervals, e.g. mon = [\"22:00-24:00\"], tue = [\"00:00-06:00\"]"
        ));
    }
    if end == start {
        return Err(format!(
            "interval `{text}` is empty: its start equals its end"
        ));
    }
    Ok((start, end))
}

fn parse_hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let digits = h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit());
    if !digits || h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

/// Sorted, with overlapping and touching intervals joined.
fn merge_intervals(mut intervals: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    intervals.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Exactly `YYYY-MM-DD`, and a real date.
fn parse_date(text: &str) -> Option<jiff::civil::Date> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    text.parse().ok()
}

// --- SLOs -------------------------------------------------------------------

/// Target keys of an indicator: priorities for tickets, severities for incidents.
struct Levels {
    what: &'static str,
    names: &'static [&'static str; 4],
    parse: fn(&str) -> Option<Level>,
}

const PRIORITY_LEVELS: Levels = Levels {
    what: "priority",
    names: &PRIORITIES,
    parse: parse_priority,
};
const SEVERITY_LEVELS: Levels = Levels {
    what: "severity",
    names: &SEVERITIES,
    parse: parse_severity,
};

fn levels_for(indicator: Indicator) -> Option<&'static Levels> {
    if indicator.is_ticket() {
        Some(&PRIORITY_LEVELS)
    } else if indicator.is_incident_clock() {
        Some(&SEVERITY_LEVELS)
    } else {
        None
    }
}

const FILTER_KEYS: [&str; 5] = ["service", "region", "priority", "severity", "probe_id"];

/// The event fields a filter can match for an indicator (SPEC §1: tickets carry
/// no service, incidents no region, ...); any other filter would match nothing.
fn filter_fields(indicator: Indicator) -> &'static [&'static str] {
    if indicator.is_probe() {
        &["service", "region", "probe_id"]
    } else if indicator.is_ticket() {
        &["priority"]
    } else {
        &["service", "severity"]
    }
}

fn level(text: &str, levels: &Levels, path: &str, p: &mut Problems) -> Option<Level> {
    let level = (levels.parse)(text);
    if level.is_none() {
        p.push(
            path,
            format!(
                "unknown {} `{text}`; expected one of {}",
                levels.what,
                levels.names.join(", ")
            ),
        );
    }
    level
}

fn targets(
    map: &BTreeMap<String, String>,
    levels: &Levels,
    at: &str,
    p: &mut Problems,
) -> Option<Targets> {
    if map.is_empty() {
        p.push(
            at,
            format!(
                "needs at least one {} key: {}",
                levels.what,
                levels.names.join(", ")
            ),
        );
        return None;
    }
    let mut out: Targets = [None; 4];
    let mut ok = true;
    for (key, text) in map {
        let path = format!("{at}.{}", quote_key(key));
        let target = level(key, levels, &path, p)
            .and_then(|l| Some((l, positive_duration(text, &path, p)?)));
        match target {
            Some((l, ms)) => out[l as usize] = Some(ms),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The indicators a key applies to, for "not meaningful here" problems.
fn only_for(p: &mut Problems, at: &str, key: &str, present: bool, indicators: &str) {
    if present {
        p.push(
            format!("{at}.{key}"),
            format!("`{key}` applies only to {indicators}"),
        );
    }
}

fn slo(
    s: RawSlo,
    at: &str,
    seen: &mut HashMap<String, String>,
    p: &mut Problems,
) -> Option<SloDef> {
    let name_path = format!("{at}.name");
    let name = required(s.name, &name_path, p).and_then(|name| {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            p.push(
                &name_path,
                format!("invalid SLO name `{name}`: use only a-z, 0-9, `-` and `_`"),
            );
            return None;
        }
        if let Some(first) = seen.get(&name) {
            p.push(
                &name_path,
                format!("duplicate SLO name `{name}` (first defined at {first})"),
            );
            return None;
        }
        seen.insert(name.clone(), at.to_string());
        Some(name)
    });
    let indicator_path = format!("{at}.indicator");
    let indicator = required(s.indicator, &indicator_path, p).and_then(|text| {
        let indicator = Indicator::parse(&text);
        if indicator.is_none() {
            p.push(
                &indicator_path,
                format!(
                    "unknown indicator `{text}`; expected one of probe_availability, probe_latency, \
                     ticket_response, ticket_resolution, incident_ack, incident_resolution, \
                     incident_availability"
                ),
            );
        }
        indicator
    });
    let objective_path = format!("{at}.objective");
    let objective =
        required(s.objective, &objective_path, p).and_then(|o| ratio(o, &objective_path, p));
    let window_path = format!("{at}.window");
    let window = required(s.window, &window_path, p).and_then(|w| {
        if w == "month" {
            Some(SloWindow::Month)
        } else if parse_duration(&w).is_some() {
            positive_duration(&w, &window_path, p).map(SloWindow::Rolling)
        } else {
            p.push(
                &window_path,
                format!("invalid window `{w}`: expected \"month\" or a duration such as \"30d\""),
            );
            None
        }
    });
    let mut ok = true;
    let mut segment_objectives = BTreeMap::new();
    for (segment, o) in s.segment_objectives.unwrap_or_default() {
        match ratio(
            o,
            &format!("{at}.segment_objectives.{}", quote_key(&segment)),
            p,
        ) {
            Some(o) => {
                segment_objectives.insert(segment, o);
            }
            None => ok = false,
        }
    }

    // Everything below depends on the indicator; without one it cannot be judged.
    let indicator = indicator?;
    let ind = indicator.as_str();

    let filter = s.filter.unwrap_or_default();
    for (key, value) in &filter {
        let path = format!("{at}.filter.{}", quote_key(key));
        let fields = filter_fields(indicator);
        if !FILTER_KEYS.contains(&key.as_str()) {
            p.push(
                path,
                format!(
                    "unknown filter key; expected one of {}",
                    FILTER_KEYS.join(", ")
                ),
            );
            ok = false;
        } else if !fields.contains(&key.as_str()) {
            p.push(
                path,
                format!("`{ind}` events have no `{key}` field, so this filter would match nothing; filterable: {}", fields.join(", ")),
            );
            ok = false;
        } else if key == "priority" {
            ok &= level(value, &PRIORITY_LEVELS, &path, p).is_some();
        } else if key == "severity" {
            ok &= level(value, &SEVERITY_LEVELS, &path, p).is_some();
        }
    }

    let threshold_path = format!("{at}.threshold_ms");
    let threshold_ms = if indicator == Indicator::ProbeLatency {
        required(s.threshold_ms, &threshold_path, p).and_then(|t| {
            if t > 0.0 && t.is_finite() {
                Some(t)
            } else {
                p.push(
                    &threshold_path,
                    format!("{t} is out of range: must be a latency in milliseconds > 0"),
                );
                None
            }
        })
    } else {
        only_for(
            p,
            at,
            "threshold_ms",
            s.threshold_ms.is_some(),
            "probe_latency",
        );
        ok &= s.threshold_ms.is_none();
        None
    };
    ok &= indicator != Indicator::ProbeLatency || threshold_ms.is_some();

    let clocked = indicator.is_ticket() || indicator.is_incident_clock();
    const CLOCKED: &str =
        "ticket_response, ticket_resolution, incident_ack and incident_resolution";
    let clock = match (&s.clock, clocked) {
        (Some(text), true) => match text.as_str() {
            "business" => ClockKind::Business,
            "24x7" => ClockKind::AllDay,
            _ => {
                p.push(
                    format!("{at}.clock"),
                    format!("unknown clock `{text}`; expected \"business\" or \"24x7\""),
                );
                ok = false;
                ClockKind::AllDay
            }
        },
        (None, true) if indicator.is_ticket() => ClockKind::Business,
        (other, _) => {
            only_for(p, at, "clock", other.is_some(), CLOCKED);
            ok &= other.is_none() || clocked;
            ClockKind::AllDay
        }
    };
    let pausable = if clocked {
        s.pausable
            .unwrap_or(indicator == Indicator::TicketResolution)
    } else {
        only_for(p, at, "pausable", s.pausable.is_some(), CLOCKED);
        ok &= s.pausable.is_none();
        false
    };

    let mut target_levels: Targets = [None; 4];
    let mut segment_targets = BTreeMap::new();
    match levels_for(indicator) {
        Some(levels) => {
            let targets_path = format!("{at}.targets");
            match required(s.targets, &targets_path, p)
                .and_then(|t| targets(&t, levels, &targets_path, p))
            {
                Some(t) => target_levels = t,
                None => ok = false,
            }
            for (segment, map) in s.segment_targets.unwrap_or_default() {
                let path = format!("{at}.segment_targets.{}", quote_key(&segment));
                match targets(&map, levels, &path, p) {
                    Some(t) => {
                        segment_targets.insert(segment, t);
                    }
                    None => ok = false,
                }
            }
        }
        None => {
            only_for(p, at, "targets", s.targets.is_some(), CLOCKED);
            only_for(
                p,
                at,
                "segment_targets",
                s.segment_targets.is_some(),
                CLOCKED,
            );
            ok &= s.targets.is_none() && s.segment_targets.is_none();
        }
    }

    let mut severities = BTreeSet::new();
    if indicator == Indicator::IncidentAvailability {
        let path = format!("{at}.severities");
        match s.severities {
            None => severities.extend([0, 1]),
            Some(list) if list.is_empty() => {
                p.push(path, "needs at least one severity: SEV1, SEV2, SEV3, SEV4");
                ok = false;
            }
            Some(list) => {
                for (i, text) in list.iter().enumerate() {
                    match level(text, &SEVERITY_LEVELS, &format!("{path}[{i}]"), p) {
                        Some(l) => {
                            severities.insert(l);
                        }
                        None => ok = false,
                    }
                }
            }
        }
    } else {
        only_for(
            p,
            at,
            "severities",
            s.severities.is_some(),
            "incident_availability",
        );
        ok &= s.severities.is_none();
    }

    // The history is checked even when the newest version has problems of
    // its own, so that every problem is reported at once.
    let newest = SloTerms {
        objective: objective.unwrap_or(0.5),
        segment_objectives: segment_objectives.clone(),
        threshold_ms,
        targets: target_levels,
        segment_targets: segment_targets.clone(),
    };
    let history = history(s.history.unwrap_or_default(), newest, indicator, at, p);
    ok &= history.is_some();

    if !ok {
        return None;
    }
    Some(SloDef {
        name: name?,
        description: s.description.unwrap_or_default(),
        indicator,
        objective: objective?,
        window: window?,
        filter,
        segment_objectives,
        threshold_ms,
        clock,
        pausable,
        targets: target_levels,
        segment_targets,
        severities,
        history: history?,
    })
}

/// The keys one `[[slos.history]]` entry sets; `None` keeps the value of the
/// next newer version.
#[derive(Default)]
struct VersionKeys {
    objective: Option<f64>,
    segment_objectives: Option<BTreeMap<String, f64>>,
    threshold_ms: Option<f64>,
    targets: Option<Targets>,
    segment_targets: Option<BTreeMap<String, Targets>>,
}

impl VersionKeys {
    fn over(&self, newer: &SloTerms) -> SloTerms {
        SloTerms {
            objective: self.objective.unwrap_or(newer.objective),
            segment_objectives: self
                .segment_objectives
                .clone()
                .unwrap_or_else(|| newer.segment_objectives.clone()),
            threshold_ms: self.threshold_ms.or(newer.threshold_ms),
            targets: self.targets.unwrap_or(newer.targets),
            segment_targets: self
                .segment_targets
                .clone()
                .unwrap_or_else(|| newer.segment_targets.clone()),
        }
    }
}

/// Validates `[[slos.history]]` of the SLO at `at` (SPEC §2.3): `until`
/// strictly increasing, `change` required, only the versioned keys, each
/// checked like its top-level counterpart. Each version is returned whole,
/// the keys it omits filled in from the next newer one.
fn history(
    raw: Vec<RawSloVersion>,
    newest: SloTerms,
    indicator: Indicator,
    at: &str,
    p: &mut Problems,
) -> Option<Vec<SloVersion>> {
    const CLOCKED: &str =
        "ticket_response, ticket_resolution, incident_ack and incident_resolution";
    let mut ok = true;
    let mut parsed = Vec::with_capacity(raw.len());
    let mut previous: Option<(Millis, String)> = None;
    for (j, v) in raw.into_iter().enumerate() {
        let here = format!("{at}.history[{j}]");
        let until_path = format!("{here}.until");
        let until = instant(v.until, &until_path, p);
        match (until, &previous) {
            (Some(u), Some((prev, prev_path))) if u <= *prev => {
                p.push(
                    &until_path,
                    format!(
                        "must be later than {prev_path} ({}): `until` instants strictly \
                         increase, oldest version first",
                        crate::model::time::format_rfc3339(*prev)
                    ),
                );
                ok = false;
            }
            _ => {}
        }
        if let Some(u) = until {
            previous = Some((u, until_path));
        } else {
            ok = false;
        }
        let change_path = format!("{here}.change");
        let change =
            required(v.change, &change_path, p).and_then(|c| non_empty(c, &change_path, p));
        ok &= change.is_some();

        let mut keys = VersionKeys::default();
        if let Some(o) = v.objective {
            keys.objective = ratio(o, &format!("{here}.objective"), p);
            ok &= keys.objective.is_some();
        }
        if let Some(map) = v.segment_objectives {
            let mut out = BTreeMap::new();
            for (segment, o) in map {
                match ratio(
                    o,
                    &format!("{here}.segment_objectives.{}", quote_key(&segment)),
                    p,
                ) {
                    Some(o) => {
                        out.insert(segment, o);
                    }
                    None => ok = false,
                }
            }
            keys.segment_objectives = Some(out);
        }
        match v.threshold_ms {
            Some(t) if indicator == Indicator::ProbeLatency => {
                if t > 0.0 && t.is_finite() {
                    keys.threshold_ms = Some(t);
                } else {
                    p.push(
                        format!("{here}.threshold_ms"),
                        format!("{t} is out of range: must be a latency in milliseconds > 0"),
                    );
                    ok = false;
                }
            }
            Some(_) => {
                only_for(p, &here, "threshold_ms", true, "probe_latency");
                ok = false;
            }
            None => {}
        }
        match levels_for(indicator) {
            Some(levels) => {
                if let Some(map) = v.targets {
                    let path = format!("{here}.targets");
                    keys.targets = targets(&map, levels, &path, p);
                    ok &= keys.targets.is_some();
                }
                if let Some(segs) = v.segment_targets {
                    let mut out = BTreeMap::new();
                    for (segment, map) in segs {
                        let path = format!("{here}.segment_targets.{}", quote_key(&segment));
                        match targets(&map, levels, &path, p) {
                            Some(t) => {
                                out.insert(segment, t);
                            }
                            None => ok = false,
                        }
                    }
                    keys.segment_targets = Some(out);
                }
            }
            None => {
                only_for(p, &here, "targets", v.targets.is_some(), CLOCKED);
                only_for(
                    p,
                    &here,
                    "segment_targets",
                    v.segment_targets.is_some(),
                    CLOCKED,
                );
                ok &= v.targets.is_none() && v.segment_targets.is_none();
            }
        }
        parsed.push((until, change, keys));
    }
    if !ok {
        return None;
    }
    let mut out = Vec::with_capacity(parsed.len());
    let mut newer = newest;
    for (until, change, keys) in parsed.into_iter().rev() {
        let terms = keys.over(&newer);
        out.push(SloVersion {
            until: until?,
            change: change?,
            terms: terms.clone(),
        });
        newer = terms;
    }
    out.reverse();
    Some(out)
}

// --- exclusions and credits --------------------------------------------------

fn instant(value: Option<DateText>, path: &str, p: &mut Problems) -> Option<Millis> {
    let text = required(value, path, p)?.0;
    let ms = parse_rfc3339(&text);
    if ms.is_none() {
        p.push(path, format!("invalid timestamp `{text}`: expected RFC 3339 with an offset, e.g. 2026-11-07T22:00:00Z"));
    }
    ms
}

/// An optional list that, when present, must name something (absent = all).
fn scope_list(
    list: Option<Vec<String>>,
    path: &str,
    what: &str,
    p: &mut Problems,
) -> Option<Vec<String>> {
    let list = list?;
    if list.is_empty() {
        p.push(
            path,
            format!("empty list: name at least one {what}, or remove the key to mean all"),
        );
    }
    for (i, item) in list.iter().enumerate() {
        if item.trim().is_empty() {
            p.push(format!("{path}[{i}]"), "must not be empty");
        }
    }
    Some(list)
}

fn exclusion(
    x: RawExclusion,
    at: &str,
    slo_names: &BTreeSet<String>,
    p: &mut Problems,
) -> Option<Exclusion> {
    let name_path = format!("{at}.name");
    let name = required(x.name, &name_path, p).and_then(|n| non_empty(n, &name_path, p));
    let from = instant(x.from, &format!("{at}.from"), p);
    let to = instant(x.to, &format!("{at}.to"), p);
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            p.push(
                format!("{at}.to"),
                "must be later than `from` (an exclusion covers [from, to))",
            );
        }
    }
    let slos_path = format!("{at}.slos");
    let slos = scope_list(x.slos, &slos_path, "SLO", p);
    for (i, slo) in slos.iter().flatten().enumerate() {
        if !slo_names.contains(slo) {
            p.push(format!("{slos_path}[{i}]"), format!("unknown SLO `{slo}`"));
        }
    }
    let customers = scope_list(x.customers, &format!("{at}.customers"), "customer", p);
    let segments = scope_list(x.segments, &format!("{at}.segments"), "segment", p);
    Some(Exclusion {
        name: name?,
        from: from?,
        to: to?,
        slos,
        customers,
        segments,
        reason: x.reason.unwrap_or_default(),
    })
}

fn credit(
    c: RawCredit,
    at: &str,
    slo_names: &BTreeSet<String>,
    seen: &mut HashMap<String, String>,
    p: &mut Problems,
) -> Option<CreditPolicy> {
    let slo_path = format!("{at}.slo");
    let slo = required(c.slo, &slo_path, p).and_then(|slo| {
        if !slo_names.contains(&slo) {
            p.push(&slo_path, format!("unknown SLO `{slo}`"));
            return None;
        }
        if let Some(first) = seen.get(&slo) {
            p.push(
                &slo_path,
                format!("SLO `{slo}` already has a credit policy at {first}"),
            );
            return None;
        }
        seen.insert(slo.clone(), at.to_string());
        Some(slo)
    });
    let tiers_path = format!("{at}.tiers");
    let raw_tiers = required(c.tiers, &tiers_path, p)?;
    if raw_tiers.is_empty() {
        p.push(
            &tiers_path,
            "needs at least one tier, e.g. { below = 0.999, percent = 10 }",
        );
    }
    let mut tiers = Vec::new();
    for (i, t) in raw_tiers.into_iter().enumerate() {
        let below_path = format!("{tiers_path}[{i}].below");
        let below = required(t.below, &below_path, p).filter(|b| {
            let valid = *b > 0.0 && *b <= 1.0;
            if !valid {
                p.push(
                    &below_path,
                    format!("{b} is out of range: an attainment in (0, 1]"),
                );
            }
            valid
        });
        let percent_path = format!("{tiers_path}[{i}].percent");
        let percent = required(t.percent, &percent_path, p).filter(|x| {
            let valid = (0.0..=100.0).contains(x);
            if !valid {
                p.push(
                    &percent_path,
                    format!("{x} is out of range: a percentage in 0..=100"),
                );
            }
            valid
        });
        if let (Some(below), Some(percent)) = (below, percent) {
            tiers.push(CreditTier { below, percent });
        }
    }
    Some(CreditPolicy { slo: slo?, tiers })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cluster_section_is_read_and_cluster_mode_refused_by_name() {
        let p = problems(
            r#"
            [cluster]
            enabled = true
            tasks = 0
            instance = "a b"
            advertise_url = "a:9464"
        "#,
        );
        assert_problem(&p, "cluster.enabled", "not available in this version");
        assert_problem(&p, "cluster.tasks", "out of range");
        assert_problem(&p, "cluster.instance", "without spaces");
        assert_problem(
            &p,
            "cluster.advertise_url",
            "not an http:// or https:// URL",
        );
        assert_eq!(p.len(), 4, "{}", render(&p));
        ok(r#"
            [cluster]
            enabled = false
            tasks = 12
            instance = ""
            advertise_url = ""
        "#);
    }

    #[test]
    fn sizes_take_binary_units_and_bad_ones_are_named() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size(" 512KB "), Some(512 << 10));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("-1MiB"), None);
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    use super::*;
    use crate::model::time::{HOUR, SECOND};

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ok(text: &str) -> Config {
        parse(text, &[], Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(text: &str) -> Vec<Problem> {
        problems_with(text, &[])
    }

    fn problems_with(text: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
        match parse(text, &env(vars), Path::new(".")) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(e) => e.problems,
        }
    }

    /// Asserts a problem at exactly `path` whose message contains `needle`.
    #[track_caller]
    fn assert_problem(problems: &[Problem], path: &str, needle: &str) {
        assert!(
            problems
                .iter()
                .any(|p| p.path == path && p.message.contains(needle)),
            "no problem at `{path}` containing `{needle}` in:\n{}",
            render(problems)
        );
    }

    const CUSTOMER: &str = r#"
        [[customers]]
        id = "acme"
        segment = "enterprise"
        timezone = "Europe/Berlin"
    "#;

    fn slo_with(body: &str) -> String {
        format!("[[slos]]\nname = \"s\"\nobjective = 0.99\nwindow = \"30d\"\n{body}\n")
    }

    fn one_slo(body: &str) -> SloDef {
        ok(&slo_with(body)).slos.remove(0)
    }

    fn slo_problems(body: &str) -> Vec<Problem> {
        problems(&slo_with(body))
    }

    #[test]
    fn empty_file_gives_every_default() {
        let c = ok("");
        assert_eq!(c, Config::default());
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.kafka.group_id, "slastream");
        let t = &c.kafka.topics;
        assert_eq!(
            [
                &t.tickets,
                &t.incidents,
                &t.probes,
                &t.alerts,
                &t.dead_letter
            ],
            [
                "sla.tickets",
                "sla.incidents",
                "sla.probes",
                "sla.alerts",
                "sla.dlq"
            ]
        );
        assert!(c.kafka.properties.is_empty());
        assert_eq!(c.state.path, PathBuf::from("./data"));
        assert_eq!(
            c.http.listen,
            "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.http.admin_token, "");
        assert_eq!(c.ingest.max_lateness, 7 * DAY);
        assert_eq!(c.ingest.max_future_skew, 5 * MINUTE);
        assert!(c.alerting.alertmanager_urls.is_empty());
        assert!(c.alerting.webhook_urls.is_empty());
        assert!(c.alerting.kafka);
        assert_eq!(c.alerting.resend_interval, MINUTE);
        assert_eq!(c.alerting.warn_at, 0.75);
        assert!(!c.alerting.per_customer_burn_alerts);
        assert!(!c.export.per_customer);
        assert!(c.customers.is_empty() && c.slos.is_empty() && c.exclusions.is_empty());
        assert!(c.credits.is_empty());
        assert_eq!(c.calendars.len(), 1);
        assert_eq!(c.calendars[ALWAYS], CalendarDef::always());
    }

    #[test]
    fn limits_have_defaults_bounds_and_overrides() {
        let d = ok("").limits;
        assert_eq!(
            (d.max_customers, d.max_groups, d.max_services),
            (100_000, 2_000, 1_000)
        );
        let c = ok("[limits]\nmax_customers = 5\nmax_groups = 1\nmax_services = 7\n").limits;
        assert_eq!((c.max_customers, c.max_groups, c.max_services), (5, 1, 7));
        let c = parse(
            "[limits]\nmax_customers = 5\n",
            &env(&[
                ("SLASTREAM__LIMITS__MAX_CUSTOMERS", "3"),
                ("SLASTREAM__LIMITS__MAX_SERVICES", "2"),
            ]),
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.limits.max_customers, c.limits.max_services), (3, 2));
        let p = problems(
            "[limits]\nmax_customers = 0\nmax_groups = -1\nmax_services = \"many\"\nmax_tickets = 1\n",
        );
        assert_problem(&p, "limits.max_customers", "must be at least 1");
        assert_problem(&p, "limits.max_groups", "must be at least 1");
        assert_problem(&p, "limits.max_services", "invalid type");
        assert_problem(&p, "limits.max_tickets", "unknown key");
        assert_eq!(p.len(), 4, "{}", render(&p));
        let p = problems_with("", &[("SLASTREAM__LIMITS__MAX_GROUPS", "0")]);
        assert_problem(&p, "limits.max_groups", "SLASTREAM__LIMITS__MAX_GROUPS");
    }

    #[test]
    fn a_registry_larger_than_the_limits_is_a_config_error() {
        let registry = r#"
            [[customers]]
            id = "a"
            segment = "enterprise"
            timezone = "UTC"
            [[customers]]
            id = "b"
            segment = "standard"
            timezone = "UTC"
            [[customers]]
            id = "c"
            segment = "standard"
            timezone = "UTC"
        "#;
        let p = problems(&format!(
            "[limits]\nmax_customers = 2\nmax_groups = 1\n{registry}"
        ));
        assert_problem(
            &p,
            "limits.max_customers",
            "2 is below the 3 customers of the registry",
        );
        assert_problem(
            &p,
            "limits.max_groups",
            "1 is below the 2 (segment, timezone) pairs of the registry",
        );
        ok(&format!(
            "[limits]\nmax_customers = 3\nmax_groups = 2\n{registry}"
        ));
    }

    #[test]
    fn service_sections_are_read() {
        let c = ok(r#"
            [kafka]
            brokers = "k1:9092,k2:9092"
            [kafka.topics]
            dead_letter = "dlq"
            [kafka.properties]
            "security.protocol" = "sasl_ssl"
            "linger.ms" = 5
            "enable.idempotence" = true
            [state]
            path = "/var/lib/slastream"
            commit_interval = "2s"
            block_cache = "256MiB"
            [http]
            listen = "[::]:8080"
            [ingest]
            max_lateness = "1h30m"
            [alerting]
            webhook_urls = ["https://hooks.example/x"]
            kafka = false
            warn_at = 0.5
            [export]
            per_customer = true
        "#);
        assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(c.kafka.group_id, "slastream");
        assert_eq!(c.kafka.topics.dead_letter, "dlq");
        assert_eq!(c.kafka.topics.tickets, "sla.tickets");
        assert_eq!(c.kafka.properties["security.protocol"], "sasl_ssl");
        assert_eq!(c.kafka.properties["linger.ms"], "5");
        assert_eq!(c.kafka.properties["enable.idempotence"], "true");
        assert_eq!(c.state.path, PathBuf::from("/var/lib/slastream"));
        assert_eq!(c.state.commit_interval, 2 * SECOND);
        assert_eq!(c.state.block_cache, 256 << 20);
        assert_eq!(c.state.write_buffer, 32 << 20, "the default");
        assert_eq!(c.http.listen.port(), 8080);
        assert_eq!(c.ingest.max_lateness, 90 * MINUTE);
        assert_eq!(c.ingest.max_future_skew, 5 * MINUTE);
        assert_eq!(c.alerting.webhook_urls, ["https://hooks.example/x"]);
        assert!(!c.alerting.kafka);
        assert_eq!(c.alerting.warn_at, 0.5);
        assert!(c.export.per_customer);
    }

    #[test]
    fn service_values_are_checked() {
        let p = problems(
            r#"
            [kafka]
            brokers = ""
            [kafka.topics]
            alerts = "sla.tickets"
            probes = "bad topic"
            [state]
            path = ""
            commit_interval = "2m"
            block_cache = "lots"
            write_buffer = "1KiB"
            [http]
            listen = "localhost"
            [ingest]
            max_lateness = "7 days"
            max_future_skew = "0s"
            [alerting]
            alertmanager_urls = ["127.0.0.1:9093"]
            resend_interval = "1x"
            warn_at = 1.5
        "#,
        );
        assert_problem(&p, "kafka.brokers", "must not be empty");
        assert_problem(&p, "kafka.topics.alerts", "also an input topic");
        assert_problem(&p, "kafka.topics.probes", "invalid topic name");
        assert_problem(&p, "state.path", "must not be empty");
        assert_problem(
            &p,
            "state.commit_interval",
            "longer than the longest interval, 1m",
        );
        assert_problem(&p, "state.block_cache", "invalid size `lots`");
        assert_problem(&p, "state.write_buffer", "below the least size, 1MiB");
        assert_problem(&p, "http.listen", "invalid listen address `localhost`");
        assert_problem(&p, "ingest.max_lateness", "invalid duration `7 days`");
        assert_problem(&p, "ingest.max_future_skew", "must be positive");
        assert_problem(
            &p,
            "alerting.alertmanager_urls[0]",
            "not an http:// or https:// URL",
        );
        assert_problem(&p, "alerting.resend_interval", "invalid duration");
        assert_problem(&p, "alerting.warn_at", "out of range");
        assert_eq!(p.len(), 13, "{}", render(&p));
    }

    #[test]
    fn env_overrides_apply_before_validation() {
        let c = parse(
            "[http]\nadmin_token = \"from-file\"\n[alerting]\nkafka = true\n",
            &env(&[
                ("SLASTREAM__HTTP__ADMIN_TOKEN", "12345"),
                ("SLASTREAM__ALERTING__KAFKA", "false"),
                ("SLASTREAM__ALERTING__WARN_AT", "0.5"),
                (
                    "SLASTREAM__ALERTING__ALERTMANAGER_URLS",
                    r#"["http://a:9093","http://b:9093"]"#,
                ),
                ("SLASTREAM__INGEST__MAX_LATENESS", "2d"),
                ("SLASTREAM__KAFKA__TOPICS__TICKETS", "42"),
                ("SLASTREAM__KAFKA__PROPERTIES__SASL_PASSWORD", "007"),
                ("SLASTREAM__KAFKA__PROPERTIES__FETCH_WAIT_MAX_MS", "1e3"),
                ("SLASTREAM__STATE__PATH", "/tmp/x"),
                ("SLASTREAM_CONFIG", "not an override: single underscore"),
                ("HOME", "/root"),
            ]),
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.http.admin_token, "12345");
        assert!(!c.alerting.kafka);
        assert_eq!(c.alerting.warn_at, 0.5);
        assert_eq!(
            c.alerting.alertmanager_urls,
            ["http://a:9093", "http://b:9093"]
        );
        assert_eq!(c.ingest.max_lateness, 2 * DAY);
        assert_eq!(c.kafka.topics.tickets, "42");
        assert_eq!(c.kafka.properties["sasl.password"], "007");
        assert_eq!(c.kafka.properties["fetch.wait.max.ms"], "1e3");
        assert_eq!(c.state.path, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn env_overrides_reach_into_arrays_of_tables() {
        let text = format!(
            "{CUSTOMER}\n{}",
            slo_with("indicator = \"probe_availability\"")
        );
        let c = parse(
            &text,
            &env(&[
                ("SLASTREAM__SLOS__0__OBJECTIVE", "0.995"),
                ("SLASTREAM__CUSTOMERS__0__SEGMENT", "business"),
            ]),
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.slos[0].objective, 0.995);
        assert_eq!(c.customers[0].segment, "business");
    }

    #[test]
    fn env_override_problems_name_the_variable() {
        let p = problems_with(
            "[[slos]]\nname = \"x\"\n",
            &[
                ("SLASTREAM__HTTP__PORT", "80"),
                ("SLASTREAM__INGEST__MAX_LATENESS", "soon"),
                ("SLASTREAM__SLOS__3__OBJECTIVE", "0.9"),
                ("SLASTREAM__HTTP__LISTEN__PORT", "1"),
                ("SLASTREAM__", "x"),
            ],
        );
        assert_problem(&p, "http.port", "unknown key");
        assert_problem(&p, "http.port", "SLASTREAM__HTTP__PORT");
        assert_problem(
            &p,
            "ingest.max_lateness",
            "(set by environment variable SLASTREAM__INGEST__MAX_LATENESS)",
        );
        assert_problem(&p, "SLASTREAM__SLOS__3__OBJECTIVE", "index below 1");
        assert_problem(&p, "SLASTREAM__", "malformed");
        // `listen` is set by no one here, so it is a string only once the file sets it.
        assert_problem(&p, "http.listen", "invalid type");
    }

    #[test]
    fn unknown_keys_are_reported_with_their_paths() {
        let p = problems(
            r#"
            colour = "blue"
            [kafka]
            broker = "x"
            [kafka.topics]
            ticket = "t"
            [kafak]
            brokers = "y"
            [calendars.office]
            monday = ["09:00-17:00"]
            mon = ["09:00-17:00"]
            [[slos]]
            name = "s"
            indicator = "probe_availability"
            objective = 0.9
            window = "30d"
            treshold_ms = 300
            [[credits]]
            slo = "s"
            tiers = [{ below = 0.9, percent = 5, cap = 1 }]
        "#,
        );
        assert_problem(&p, "colour", "unknown key");
        assert_problem(&p, "kafka.broker", "unknown key; expected one of `brokers`");
        assert_problem(&p, "kafka.topics.ticket", "unknown key");
        assert_problem(&p, "kafak", "unknown key");
        assert_problem(&p, "calendars.office.monday", "unknown key");
        assert_problem(&p, "slos[0].treshold_ms", "unknown key");
        assert_problem(&p, "credits[0].tiers[0].cap", "unknown key");
        assert_eq!(p.len(), 7, "{}", render(&p));
    }

    #[test]
    fn wrong_types_are_reported_with_their_paths() {
        let p = problems(
            r#"
            customers_files = "customers.toml"
            [kafka]
            brokers = 9092
            [alerting]
            kafka = "yes"
            [[customers]]
            id = 7
            segment = "enterprise"
            timezone = "UTC"
            [[slos]]
            name = "s"
            indicator = "incident_ack"
            objective = "high"
            window = "30d"
            targets = { SEV1 = 15 }
            [[credits]]
            slo = "s"
            tiers = [{ below = 0.9, percent = 5 }, { below = 0.5, percent = "all" }]
        "#,
        );
        assert_problem(
            &p,
            "customers_files",
            "invalid type: string \"customers.toml\", expected an array",
        );
        assert_problem(
            &p,
            "kafka.brokers",
            "invalid type: integer `9092`, expected a string",
        );
        assert_problem(&p, "alerting.kafka", "expected a boolean");
        assert_problem(&p, "customers[0].id", "invalid type");
        assert_problem(&p, "slos[0].objective", "invalid type");
        assert_problem(&p, "slos[0].targets.SEV1", "invalid type");
        assert_problem(&p, "credits[0].tiers[1].percent", "invalid type");
        // The dropped values are not reported a second time as missing.
        assert_eq!(p.len(), 7, "{}", render(&p));
    }

    #[test]
    fn single_brackets_for_an_array_of_tables_get_a_hint() {
        let p = problems("[customers]\nid = \"acme\"\n[kafka.properties]\nacks = [1]\n[[exclusions]]\nfrom = 5\n");
        assert_problem(
            &p,
            "customers",
            "written with double brackets, e.g. [[slos]]",
        );
        assert_problem(
            &p,
            "kafka.properties.acks",
            "expected a string, number or boolean",
        );
        assert_problem(
            &p,
            "exclusions[0].from",
            "invalid type: integer, expected a date or timestamp string",
        );
    }

    #[test]
    fn many_problems_in_different_sections_are_reported_together() {
        let err = parse(
            r#"
            [http]
            listen = "nowhere"
            [ingest]
            max_lateness = "a week"
            [[customers]]
            id = "acme"
            segment = "enterprise"
            timezone = "Mars/Olympus_Mons"
            calendar = "office"
            [calendars.night]
            mon = ["22:00-06:00"]
            [[slos]]
            name = "Bad Name"
            indicator = "uptime"
            objective = 1.5
            window = "30d"
            [[exclusions]]
            name = "x"
            from = "2026-11-08T02:00:00Z"
            to = "2026-11-07T22:00:00Z"
            slos = ["nope"]
            [[credits]]
            slo = "ghost"
            tiers = []
            "#,
            &[],
            Path::new("."),
        )
        .expect_err("invalid");
        let p = &err.problems;
        assert_problem(p, "http.listen", "invalid listen address");
        assert_problem(p, "ingest.max_lateness", "invalid duration");
        assert_problem(
            p,
            "customers[0].timezone",
            "unknown time zone `Mars/Olympus_Mons`",
        );
        assert_problem(
            p,
            "customers[0].calendar",
            "unknown calendar `office`; defined: 24x7, night",
        );
        assert_problem(p, "calendars.night.mon[0]", "overnight shifts are written as two intervals, e.g. mon = [\"22:00-24:00\"], tue = [\"00:00-06:00\"]");
        assert_problem(p, "slos[0].name", "invalid SLO name");
        assert_problem(p, "slos[0].indicator", "unknown indicator `uptime`");
        assert_problem(p, "slos[0].objective", "out of range");
        assert_problem(p, "exclusions[0].to", "must be later than `from`");
        assert_problem(p, "exclusions[0].slos[0]", "unknown SLO `nope`");
        assert_problem(p, "credits[0].slo", "unknown SLO `ghost`");
        assert_problem(p, "credits[0].tiers", "at least one tier");
        assert_eq!(p.len(), 12, "{err}");
        let shown = err.to_string();
        assert!(
            shown.starts_with("invalid configuration: 12 problems\n  "),
            "{shown}"
        );
        assert!(
            shown.contains("\n  http.listen: invalid listen address `nowhere`"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 13);
    }

    #[test]
    fn display_has_a_count_line_then_one_line_per_problem() {
        let err = ConfigError {
            problems: vec![Problem {
                path: "a.b".into(),
                message: "bad".into(),
            }],
        };
        assert_eq!(
            err.to_string(),
            "invalid configuration: 1 problem\n  a.b: bad"
        );
    }

    #[test]
    fn toml_syntax_errors_have_a_position() {
        let p = problems("[http]\nlisten = \n");
        assert_eq!(p.len(), 1);
        assert!(p[0].path.starts_with("line 2, column"), "{:?}", p[0]);
        assert!(p[0].message.starts_with("invalid TOML"), "{:?}", p[0]);
    }

    #[test]
    fn customers_are_validated() {
        let p = problems(
            r#"
            [[customers]]
            id = "acme"
            segment = "enterprise"
            timezone = "Europe/Berlin"
            [[customers]]
            id = "acme"
            segment = ""
            timezone = "europe/nowhere"
            calendar = "missing"
            [[customers]]
            segment = "standard"
        "#,
        );
        assert_problem(
            &p,
            "customers[1].id",
            "duplicate customer id `acme` (first defined at customers[0])",
        );
        assert_problem(&p, "customers[1].segment", "must not be empty");
        assert_problem(&p, "customers[1].timezone", "unknown time zone");
        assert_problem(&p, "customers[1].calendar", "unknown calendar `missing`");
        assert_problem(&p, "customers[2].id", "required key is missing");
        assert_problem(&p, "customers[2].timezone", "required key is missing");
        assert_eq!(p.len(), 6, "{}", render(&p));
    }

    #[test]
    fn customer_defaults_to_the_24x7_calendar() {
        let c = ok(CUSTOMER);
        assert_eq!(
            c.customers,
            [CustomerDef {
                id: "acme".into(),
                segment: "enterprise".into(),
                timezone: "Europe/Berlin".into(),
                calendar: ALWAYS.into(),
            }]
        );
    }

    #[test]
    fn zone_names_are_stored_in_their_canonical_spelling() {
        let c = ok(
            "[[customers]]\nid = \"a\"\nsegment = \"s\"\ntimezone = \"asia/kolkata\"\n\
                    [calendars.c]\ntimezone = \"utc\"\nmon = [\"09:00-17:00\"]",
        );
        assert_eq!(c.customers[0].timezone, "Asia/Kolkata");
        assert_eq!(c.calendars["c"].timezone.as_deref(), Some("UTC"));
    }

    #[test]
    fn calendars_are_parsed_and_merged() {
        let c = ok(r#"
            [calendars.split]
            timezone = "Asia/Kathmandu"
            mon = ["13:00-18:00", "09:00-12:00"]
            tue = ["09:00-12:00", "11:00-14:00", "14:00-15:30", "16:00-24:00"]
            sun = ["00:00-24:00"]
            holidays = [2026-12-25, "2026-12-24"]   # a TOML date or a string
        "#);
        let cal = &c.calendars["split"];
        assert_eq!(cal.name, "split");
        assert_eq!(cal.timezone.as_deref(), Some("Asia/Kathmandu"));
        assert_eq!(cal.week[0], [(540, 720), (780, 1080)]);
        assert_eq!(cal.week[1], [(540, 930), (960, 1440)]);
        assert!(cal.week[2..6].iter().all(Vec::is_empty));
        assert_eq!(cal.week[6], [(0, 1440)]);
        let days: Vec<String> = cal.holidays.iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["2026-12-24", "2026-12-25"]);
        assert!(c.calendars.contains_key(ALWAYS));
    }

    #[test]
    fn calendar_problems() {
        let p = problems(
            r#"
            [calendars.a]
            timezone = "Nowhere/City"
            mon = ["9-17", "09:00-09:00", "09:00-24:30", "18:00-09:00", "08:00-10:00"]
            holidays = ["2026-02-30", "24.12.2026", "2026-12-24T00:00:00"]
            [calendars.closed]
            timezone = "UTC"
            [calendars.24x7]
            mon = ["00:00-24:00"]
        "#,
        );
        assert_problem(&p, "calendars.a.timezone", "unknown time zone");
        assert_problem(&p, "calendars.a.mon[0]", "expected \"HH:MM-HH:MM\"");
        assert_problem(&p, "calendars.a.mon[1]", "is empty");
        assert_problem(&p, "calendars.a.mon[2]", "invalid interval");
        assert_problem(
            &p,
            "calendars.a.mon[3]",
            "overnight shifts are written as two intervals",
        );
        assert_problem(&p, "calendars.a.holidays[0]", "invalid date `2026-02-30`");
        assert_problem(&p, "calendars.a.holidays[1]", "expected YYYY-MM-DD");
        assert_problem(&p, "calendars.a.holidays[2]", "expected YYYY-MM-DD");
        assert_problem(&p, "calendars.closed", "no business hours");
        assert_problem(&p, "calendars.24x7", "built in");
        assert_eq!(p.len(), 10, "{}", render(&p));
    }

    #[test]
    fn interval_syntax() {
        assert_eq!(parse_interval("00:00-24:00"), Ok((0, 1440)));
        assert_eq!(parse_interval("9:30 - 17:05"), Ok((570, 1025)));
        assert!(parse_interval("24:00-24:00").is_err());
        assert!(parse_interval("10:60-11:00").is_err());
        assert!(parse_interval("10:00").is_err());
        assert_eq!(
            merge_intervals(vec![(600, 700), (0, 10), (650, 800), (10, 20)]),
            [(0, 20), (600, 800)]
        );
    }

    #[test]
    fn slo_defaults_depend_on_the_indicator() {
        let response = one_slo("indicator = \"ticket_response\"\ntargets = { P1 = \"1h\" }");
        assert_eq!(
            (response.clock, response.pausable),
            (ClockKind::Business, false)
        );
        assert_eq!(response.targets, [Some(HOUR), None, None, None]);
        assert!(response.severities.is_empty());
        let resolution = one_slo("indicator = \"ticket_resolution\"\ntargets = { P4 = \"5d\" }");
        assert_eq!(
            (resolution.clock, resolution.pausable),
            (ClockKind::Business, true)
        );
        let ack = one_slo("indicator = \"incident_ack\"\ntargets = { SEV2 = \"30m\" }");
        assert_eq!((ack.clock, ack.pausable), (ClockKind::AllDay, false));
        assert_eq!(ack.targets, [None, Some(30 * MINUTE), None, None]);
        let avail = one_slo("indicator = \"incident_availability\"");
        assert_eq!(avail.severities, BTreeSet::from([0, 1]));
        assert_eq!(avail.clock, ClockKind::AllDay);
        let probe = one_slo("indicator = \"probe_availability\"\ndescription = \"d\"");
        assert_eq!(
            (probe.clock, probe.pausable, probe.threshold_ms),
            (ClockKind::AllDay, false, None)
        );
        assert_eq!(probe.description, "d");
        assert_eq!(probe.window, SloWindow::Rolling(30 * DAY));
        let explicit = one_slo(
            "indicator = \"ticket_resolution\"\nclock = \"24x7\"\npausable = false\ntargets = { P1 = \"4h\" }",
        );
        assert_eq!(
            (explicit.clock, explicit.pausable),
            (ClockKind::AllDay, false)
        );
        let sev =
            one_slo("indicator = \"incident_availability\"\nseverities = [\"SEV1\", \"SEV3\"]");
        assert_eq!(sev.severities, BTreeSet::from([0, 2]));
    }

    #[test]
    fn slo_names_objectives_and_windows() {
        let month = ok(
            "[[slos]]\nname = \"a_b-1\"\nindicator = \"probe_availability\"\nobjective = 0.5\nwindow = \"month\"\n\
             segment_objectives = { enterprise = 0.9995 }",
        );
        assert_eq!(month.slos[0].window, SloWindow::Month);
        assert_eq!(month.slos[0].objective_for("enterprise"), 0.9995);
        let p = problems(
            r#"
            [[slos]]
            name = "dup"
            indicator = "probe_availability"
            objective = 0.9
            window = "30d"
            [[slos]]
            name = "dup"
            indicator = "probe_availability"
            objective = 1
            window = "weekly"
            segment_objectives = { enterprise = 0, business = 0.99 }
            [[slos]]
            name = "Upper"
            indicator = "probe_availability"
            objective = 0.0
            window = "0d"
            [[slos]]
            description = "nameless"
        "#,
        );
        assert_problem(
            &p,
            "slos[1].name",
            "duplicate SLO name `dup` (first defined at slos[0])",
        );
        assert_problem(&p, "slos[1].objective", "between 0 and 1 (exclusive)");
        assert_problem(&p, "slos[1].window", "invalid window `weekly`");
        assert_problem(&p, "slos[1].segment_objectives.enterprise", "out of range");
        assert_problem(&p, "slos[2].name", "invalid SLO name `Upper`");
        assert_problem(&p, "slos[2].objective", "out of range");
        assert_problem(&p, "slos[2].window", "must be positive");
        for key in ["name", "indicator", "objective", "window"] {
            assert_problem(&p, &format!("slos[3].{key}"), "required key is missing");
        }
        assert_eq!(p.len(), 11, "{}", render(&p));
    }

    #[test]
    fn threshold_only_for_probe_latency() {
        assert_eq!(
            one_slo("indicator = \"probe_latency\"\nthreshold_ms = 300").threshold_ms,
            Some(300.0)
        );
        assert_problem(
            &slo_problems("indicator = \"probe_latency\""),
            "slos[0].threshold_ms",
            "required",
        );
        assert_problem(
            &slo_problems("indicator = \"probe_latency\"\nthreshold_ms = -1"),
            "slos[0].threshold_ms",
            "out of range",
        );
        assert_problem(
            &slo_problems("indicator = \"probe_availability\"\nthreshold_ms = 300"),
            "slos[0].threshold_ms",
            "applies only to probe_latency",
        );
    }

    #[test]
    fn targets_follow_the_indicator() {
        let s = one_slo(
            "indicator = \"ticket_response\"\ntargets = { P1 = \"1h\", P2 = \"1h30m\" }\n\
             segment_targets = { enterprise = { P1 = \"30m\" } }",
        );
        assert_eq!(s.target_for("enterprise", 0), Some(30 * MINUTE));
        assert_eq!(s.target_for("enterprise", 1), Some(90 * MINUTE));
        assert_eq!(s.target_for("standard", 0), Some(HOUR));
        assert_eq!(s.target_for("standard", 3), None);

        assert_problem(
            &slo_problems("indicator = \"ticket_response\""),
            "slos[0].targets",
            "required",
        );
        assert_problem(
            &slo_problems("indicator = \"incident_ack\"\ntargets = {}"),
            "slos[0].targets",
            "at least one severity",
        );
        let p = slo_problems(
            "indicator = \"incident_resolution\"\ntargets = { P1 = \"1h\", SEV2 = \"soon\", SEV3 = \"0m\" }\n\
             segment_targets = { gold = { SEV5 = \"1h\" }, silver = {} }",
        );
        assert_problem(
            &p,
            "slos[0].targets.P1",
            "unknown severity `P1`; expected one of SEV1, SEV2, SEV3, SEV4",
        );
        assert_problem(&p, "slos[0].targets.SEV2", "invalid duration `soon`");
        assert_problem(&p, "slos[0].targets.SEV3", "must be positive");
        assert_problem(&p, "slos[0].segment_targets.gold.SEV5", "unknown severity");
        assert_problem(
            &p,
            "slos[0].segment_targets.silver",
            "at least one severity",
        );
        assert_eq!(p.len(), 5, "{}", render(&p));
        let p = slo_problems(
            "indicator = \"probe_availability\"\ntargets = { P1 = \"1h\" }\nsegment_targets = {}",
        );
        assert_problem(&p, "slos[0].targets", "applies only to ticket_response");
        assert_problem(&p, "slos[0].segment_targets", "applies only to");
    }

    #[test]
    fn keys_without_effect_for_the_indicator_are_rejected() {
        let p = slo_problems(
            "indicator = \"probe_availability\"\nclock = \"24x7\"\npausable = true\nseverities = [\"SEV1\"]",
        );
        assert_problem(&p, "slos[0].clock", "applies only to");
        assert_problem(&p, "slos[0].pausable", "applies only to");
        assert_problem(
            &p,
            "slos[0].severities",
            "applies only to incident_availability",
        );
        let p = slo_problems(
            "indicator = \"ticket_response\"\nclock = \"office\"\ntargets = { P1 = \"1h\" }",
        );
        assert_problem(&p, "slos[0].clock", "expected \"business\" or \"24x7\"");
        let p = slo_problems(
            "indicator = \"incident_availability\"\nseverities = [\"SEV1\", \"critical\"]",
        );
        assert_problem(&p, "slos[0].severities[1]", "unknown severity `critical`");
        let p = slo_problems("indicator = \"incident_availability\"\nseverities = []");
        assert_problem(&p, "slos[0].severities", "at least one severity");
    }

    #[test]
    fn filters_are_checked_against_the_indicator() {
        let s = one_slo("indicator = \"probe_availability\"\nfilter = { service = \"api\", region = \"eu\", probe_id = \"p1\" }");
        assert_eq!(s.filter.len(), 3);
        let s = one_slo("indicator = \"ticket_response\"\nfilter = { priority = \"P1\" }\ntargets = { P1 = \"1h\" }");
        assert_eq!(s.filter["priority"], "P1");
        let s = one_slo("indicator = \"incident_ack\"\nfilter = { severity = \"SEV2\", service = \"db\" }\ntargets = { SEV1 = \"1h\" }");
        assert_eq!(s.filter["severity"], "SEV2");

        let p = slo_problems(
            "indicator = \"probe_availability\"\nfilter = { team = \"x\", priority = \"P1\" }",
        );
        assert_problem(
            &p,
            "slos[0].filter.team",
            "unknown filter key; expected one of service, region, priority, severity, probe_id",
        );
        assert_problem(
            &p,
            "slos[0].filter.priority",
            "`probe_availability` events have no `priority` field",
        );
        let p = slo_problems("indicator = \"ticket_resolution\"\nfilter = { priority = \"urgent\" }\ntargets = { P1 = \"1h\" }");
        assert_problem(&p, "slos[0].filter.priority", "unknown priority `urgent`");
        let p =
            slo_problems("indicator = \"incident_availability\"\nfilter = { severity = \"SEV9\" }");
        assert_problem(&p, "slos[0].filter.severity", "unknown severity `SEV9`");
        let p = slo_problems(
            "indicator = \"probe_latency\"\nthreshold_ms = 1\nfilter = { service = 1 }",
        );
        assert_problem(&p, "slos[0].filter.service", "invalid type");
    }

    #[test]
    fn exclusions_are_validated() {
        let base = slo_with("indicator = \"probe_availability\"");
        let c = ok(&format!(
            "{base}\n[[exclusions]]\nname = \"m\"\nfrom = 2026-11-07T23:00:00+01:00\nto = \"2026-11-08T02:00:00Z\"\n\
             segments = [\"standard\"]\nreason = \"r\"\n[[exclusions]]\nname = \"all\"\nfrom = \"2026-01-01T00:00:00Z\"\n\
             to = \"2026-01-01T00:00:01Z\"\nslos = [\"s\"]\ncustomers = [\"acme\"]"
        ));
        let x = &c.exclusions[0];
        assert_eq!(x.to - x.from, 4 * HOUR);
        assert_eq!((x.slos.as_ref(), x.customers.as_ref()), (None, None));
        assert_eq!(x.segments.as_deref(), Some(&["standard".to_string()][..]));
        assert_eq!(x.reason, "r");
        assert_eq!(c.exclusions[1].to - c.exclusions[1].from, SECOND);
        assert!(
            c.exclusions[1].covers("s", "acme", "x") && !c.exclusions[1].covers("s", "other", "x")
        );

        let p = problems(&format!(
            "{base}\n[[exclusions]]\nfrom = \"2026-11-07 22:00\"\nto = \"2026-11-07T22:00:00Z\"\nslos = []\ncustomers = [\"\"]\n\
             [[exclusions]]\nname = \"same\"\nfrom = \"2026-11-07T22:00:00Z\"\nto = \"2026-11-07T22:00:00Z\"\nslos = [\"s\", \"t\"]\nsegments = []"
        ));
        assert_problem(&p, "exclusions[0].name", "required");
        assert_problem(
            &p,
            "exclusions[0].from",
            "invalid timestamp `2026-11-07 22:00`",
        );
        assert_problem(&p, "exclusions[0].slos", "empty list");
        assert_problem(&p, "exclusions[0].customers[0]", "must not be empty");
        assert_problem(&p, "exclusions[1].to", "must be later than `from`");
        assert_problem(&p, "exclusions[1].slos[1]", "unknown SLO `t`");
        assert_problem(&p, "exclusions[1].segments", "empty list");
        assert_eq!(p.len(), 7, "{}", render(&p));
    }

    #[test]
    fn credits_are_validated() {
        let base = format!("{}\n{}", slo_with("indicator = \"probe_availability\""), "");
        let c = ok(&format!("{base}[[credits]]\nslo = \"s\"\ntiers = [{{ below = 0.99, percent = 10 }}, {{ below = 1, percent = 0 }}]"));
        assert_eq!(c.credits[0].slo, "s");
        assert_eq!(
            c.credits[0].tiers,
            [
                CreditTier {
                    below: 0.99,
                    percent: 10.0
                },
                CreditTier {
                    below: 1.0,
                    percent: 0.0
                }
            ]
        );
        assert_eq!(c.credits[0].credit(Some(0.98)), 10.0);

        let p = problems(&format!(
            "{base}[[credits]]\nslo = \"s\"\ntiers = [{{ below = 0, percent = 10 }}, {{ below = 0.9, percent = 101 }}, {{ percent = 5 }}]\n\
             [[credits]]\nslo = \"s\"\ntiers = [{{ below = 0.9, percent = 1 }}]\n[[credits]]\nslo = \"s2\""
        ));
        assert_problem(&p, "credits[0].tiers[0].below", "out of range");
        assert_problem(&p, "credits[0].tiers[1].percent", "out of range");
        assert_problem(&p, "credits[0].tiers[2].below", "required");
        assert_problem(
            &p,
            "credits[1].slo",
            "already has a credit policy at credits[0]",
        );
        assert_problem(&p, "credits[2].slo", "unknown SLO `s2`");
        assert_problem(&p, "credits[2].tiers", "required");
        assert_eq!(p.len(), 6, "{}", render(&p));
    }

    #[test]
    fn customers_files_resolve_against_the_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("more")).unwrap();
        std::fs::write(
            dir.path().join("more/extra.toml"),
            "[[customers]]\nid = \"b\"\nsegment = \"s\"\ntimezone = \"Asia/Kathmandu\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("bad.toml"),
            "[[customers]]\nid = \"a\"\nsegment = \"s\"\ntimezone = \"Nowhere\"\ncolor = 1\n[calendars.x]\nmon = []\n",
        )
        .unwrap();
        let main = format!("customers_files = [\"more/extra.toml\"]\n{CUSTOMER}\n[[customers]]\nid = \"a\"\nsegment = \"s\"\ntimezone = \"UTC\"\n");
        std::fs::write(dir.path().join("slastream.toml"), &main).unwrap();
        let c = load(&dir.path().join("slastream.toml")).unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = c.customers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["acme", "a", "b"]);
        assert_eq!(c.customers[2].timezone, "Asia/Kathmandu");

        let text = format!(
            "customers_files = [\"more/extra.toml\", \"more/extra.toml\", \"bad.toml\", \"missing.toml\"]\n{CUSTOMER}"
        );
        let p = parse(&text, &[], dir.path()).expect_err("invalid").problems;
        assert_problem(
            &p,
            "more/extra.toml:customers[0].id",
            "duplicate customer id `b` (first defined at more/extra.toml:customers[0])",
        );
        assert_problem(&p, "bad.toml:customers[0].color", "unknown key");
        assert_problem(
            &p,
            "bad.toml:calendars",
            "unknown key; expected `customers`",
        );
        assert_problem(&p, "bad.toml:customers[0].timezone", "unknown time zone");
        assert_problem(&p, "customers_files[3]", "cannot read");
        assert_eq!(p.len(), 5, "{}", render(&p));

        std::fs::write(dir.path().join("broken.toml"), "[[customers]\n").unwrap();
        let p = parse("customers_files = [\"broken.toml\"]", &[], dir.path())
            .expect_err("invalid")
            .problems;
        assert!(p[0].path.starts_with("broken.toml:line 1"), "{p:?}");
    }

    #[test]
    fn load_reports_an_unreadable_file() {
        let err = load(Path::new("/nonexistent/slastream.toml")).expect_err("missing");
        assert_eq!(err.problems[0].path, "/nonexistent/slastream.toml");
        assert!(err.problems[0].message.contains("cannot read"));
    }

    #[test]
    fn shipped_example_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let text = std::fs::read_to_string(dir.join("slastream.toml")).unwrap();
        let c = parse(&text, &[], &dir).unwrap_or_else(|e| panic!("config/slastream.toml: {e}"));

        // Service sections show the defaults.
        let defaults = Config::default();
        assert_eq!(c.kafka.topics, defaults.kafka.topics);
        assert_eq!(
            (&c.state, &c.http, &c.ingest),
            (&defaults.state, &defaults.http, &defaults.ingest)
        );
        assert_eq!(
            (&c.alerting, &c.export),
            (&defaults.alerting, &defaults.export)
        );
        assert_eq!(c.kafka.properties["client.id"], "slastream");

        // Customers: inline ones first, then config/customers.toml.
        let ids: Vec<&str> = c.customers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "acme",
                "globex",
                "initech",
                "umbrella",
                "hooli",
                "stark",
                "wayne",
                "tyrell",
                "cyberdyne"
            ]
        );
        let segments: BTreeSet<&str> = c.customers.iter().map(|c| c.segment.as_str()).collect();
        assert_eq!(
            segments,
            BTreeSet::from(["business", "enterprise", "standard"])
        );
        let zones: BTreeSet<&str> = c.customers.iter().map(|c| c.timezone.as_str()).collect();
        for zone in [
            "Europe/Berlin",
            "America/New_York",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Sydney",
        ] {
            assert!(zones.contains(zone), "{zone}");
        }
        assert_eq!(c.customers[4].calendar, ALWAYS);

        let eu = &c.calendars["eu-business"];
        assert_eq!(eu.timezone, None);
        assert_eq!(eu.week[0], [(9 * 60, 17 * 60)]);
        assert!(eu.week[5].is_empty() && eu.week[6].is_empty());
        for day in ["2026-12-24", "2026-12-25", "2026-12-26"] {
            assert!(eu.holidays.contains(&day.parse().unwrap()), "{day}");
        }
        let us = &c.calendars["us-support"];
        assert_eq!(us.timezone.as_deref(), Some("America/New_York"));
        assert_eq!(us.week[2], [(9 * 60, 12 * 60), (13 * 60, 18 * 60)]);

        let names: Vec<&str> = c.slos.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "api-availability",
                "api-latency",
                "first-response",
                "resolution",
                "incident-availability",
                "incident-ack",
                "incident-resolution"
            ]
        );
        let indicators: BTreeSet<&str> = c.slos.iter().map(|s| s.indicator.as_str()).collect();
        assert_eq!(indicators.len(), 7, "one SLO of every indicator");
        let first = &c.slos[2];
        assert_eq!(first.target_for("enterprise", 0), Some(30 * MINUTE));
        assert_eq!(first.target_for("business", 0), Some(HOUR));
        assert_eq!(first.window, SloWindow::Month);
        assert_eq!(c.slos[0].objective_for("enterprise"), 0.9995);
        assert_eq!(c.slos[1].threshold_ms, Some(300.0));
        assert!(c.slos[3].pausable);
        assert_eq!(c.slos[4].severities, BTreeSet::from([0, 1]));
        assert_eq!(c.slos[6].targets[3], None);

        assert_eq!(c.exclusions.len(), 1);
        assert!(c.exclusions[0].covers("api-availability", "acme", "enterprise"));
        assert!(!c.exclusions[0].covers("first-response", "acme", "enterprise"));
        let credited: Vec<&str> = c.credits.iter().map(|c| c.slo.as_str()).collect();
        assert_eq!(credited, ["incident-availability", "api-availability"]);
        assert_eq!(c.credits[0].credit(Some(0.98)), 25.0);

        // `load` finds customers.toml beside the file, whatever the working directory.
        let loaded = load(&dir.join("slastream.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.customers.len(), 9);
    }

    const TICKET_SLO: &str = "indicator = \"ticket_response\"\n\
        targets = { P1 = \"1h\", P2 = \"4h\" }\n\
        segment_objectives = { enterprise = 0.995 }\n";

    #[test]
    fn history_versions_inherit_from_the_next_newer_one() {
        let s = one_slo(&format!(
            "{TICKET_SLO}\
             [[slos.history]]\n\
             until = \"2026-07-01T00:00:00Z\"\n\
             objective = 0.9\n\
             change = \"CR-1: first terms\"\n\
             [[slos.history]]\n\
             until = 2026-10-01T00:00:00+02:00\n\
             targets = {{ P1 = \"2h\" }}\n\
             segment_targets = {{ enterprise = {{ P1 = \"90m\" }} }}\n\
             change = \"CR-2: Q3 review\"\n"
        ));
        assert_eq!(s.history.len(), 2);
        let (old, mid) = (&s.history[0], &s.history[1]);
        assert_eq!(old.until, parse_rfc3339("2026-07-01T00:00:00Z").unwrap());
        assert_eq!(mid.until, parse_rfc3339("2026-09-30T22:00:00Z").unwrap());
        assert_eq!(mid.change, "CR-2: Q3 review");
        // The middle version keeps the newest objective and segment objectives.
        assert_eq!(mid.terms.objective, 0.99);
        assert_eq!(mid.terms.segment_objectives["enterprise"], 0.995);
        assert_eq!(mid.terms.targets, [Some(2 * HOUR), None, None, None]);
        assert_eq!(mid.terms.target_for("enterprise", 0), Some(90 * MINUTE));
        // The oldest one sets its objective and keeps the middle one's targets.
        assert_eq!(old.terms.objective, 0.9);
        assert_eq!(old.terms.targets, mid.terms.targets);
        assert_eq!(old.terms.segment_targets, mid.terms.segment_targets);
        // Which version is in force where.
        assert_eq!(s.target_at("standard", 0, old.until - 1), Some(2 * HOUR));
        assert_eq!(s.objective_at(None, old.until - 1), 0.9);
        assert_eq!(s.objective_at(None, old.until), 0.99);
        assert_eq!(s.target_at("standard", 0, mid.until - 1), Some(2 * HOUR));
        assert_eq!(s.target_at("standard", 0, mid.until), Some(HOUR));
        assert_eq!(s.target_at("enterprise", 1, mid.until), Some(4 * HOUR));
    }

    #[test]
    fn history_problems_are_reported_together_with_their_paths() {
        let problems = slo_problems(&format!(
            "{TICKET_SLO}\
             [[slos.history]]\n\
             until = \"2026-10-01T00:00:00Z\"\n\
             change = \"CR-2\"\n\
             [[slos.history]]\n\
             until = \"2026-09-01T00:00:00Z\"\n\
             objective = 1.5\n\
             window = \"7d\"\n\
             [[slos.history]]\n\
             until = \"yesterday\"\n\
             change = \"\"\n\
             targets = {{ P9 = \"1h\" }}\n\
             threshold_ms = 100\n"
        ));
        assert_problem(&problems, "slos[0].history[1].window", "unknown key");
        assert_problem(
            &problems,
            "slos[0].history[1].until",
            "must be later than slos[0].history[0].until",
        );
        assert_problem(&problems, "slos[0].history[1].change", "required");
        assert_problem(&problems, "slos[0].history[1].objective", "out of range");
        assert_problem(&problems, "slos[0].history[2].until", "invalid timestamp");
        assert_problem(&problems, "slos[0].history[2].change", "must not be empty");
        assert_problem(
            &problems,
            "slos[0].history[2].targets.P9",
            "unknown priority",
        );
        assert_problem(
            &problems,
            "slos[0].history[2].threshold_ms",
            "applies only to probe_latency",
        );
    }

    #[test]
    fn history_keys_follow_the_indicator() {
        let s = one_slo(
            "indicator = \"probe_latency\"\nthreshold_ms = 300\n\
             [[slos.history]]\nuntil = \"2026-10-01T00:00:00Z\"\nthreshold_ms = 500\nchange = \"x\"\n",
        );
        assert_eq!(s.threshold_at(s.history[0].until - 1), Some(500.0));
        assert_eq!(s.threshold_at(s.history[0].until), Some(300.0));
        let problems = slo_problems(
            "indicator = \"probe_availability\"\n\
             [[slos.history]]\nuntil = \"2026-10-01T00:00:00Z\"\ntargets = { P1 = \"1h\" }\n\
             threshold_ms = 1\nchange = \"x\"\n\
             [[slos.history]]\nuntil = \"2026-10-01T00:00:00Z\"\nchange = \"same instant\"\n",
        );
        assert_problem(
            &problems,
            "slos[0].history[0].targets",
            "applies only to ticket_response",
        );
        assert_problem(
            &problems,
            "slos[0].history[0].threshold_ms",
            "applies only to probe_latency",
        );
        assert_problem(&problems, "slos[0].history[1].until", "strictly");
    }

    #[test]
    fn forecast_horizon_has_a_default_and_is_checked() {
        assert_eq!(ok("").alerting.forecast_horizon, 3 * DAY);
        assert_eq!(
            ok("[alerting]\nforecast_horizon = \"12h\"\n")
                .alerting
                .forecast_horizon,
            12 * HOUR
        );
        assert_problem(
            &problems("[alerting]\nforecast_horizon = \"soon\"\n"),
            "alerting.forecast_horizon",
            "invalid duration",
        );
    }

    const HASH_A: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const HASH_B: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn http_tokens_are_read_with_their_roles() {
        let c = ok(&format!(
            r#"
            [http]
            read_auth = true
            [[http.tokens]]
            name = "acme-portal"
            token_sha256 = "{HASH_A}"
            role = "customer"
            customers = ["acme", "globex"]
            [[http.tokens]]
            name = "ops"
            token_sha256 = "{}"
            role = "admin"
            "#,
            HASH_B.to_uppercase()
        ));
        assert!(c.http.read_auth);
        assert_eq!(c.http.tokens.len(), 2);
        assert_eq!(c.http.tokens[0].name, "acme-portal");
        assert_eq!(c.http.tokens[0].role, Role::Customer);
        assert_eq!(c.http.tokens[0].customers, ["acme", "globex"]);
        assert_eq!(c.http.tokens[0].sha256[0], 0x9f);
        assert_eq!(c.http.tokens[0].sha256[31], 0x08);
        assert_eq!(c.http.tokens[1].role, Role::Admin);
        assert_eq!(c.http.tokens[1].sha256[0], 0x60);
        assert!(c.http.tokens[1].customers.is_empty());
        assert!(!format!("{:?}", c.http.tokens[0]).contains("9f86"));
        let d = ok("");
        assert!(!d.http.read_auth && d.http.tokens.is_empty());
    }

    #[test]
    fn http_token_problems_are_all_reported() {
        let p = problems(&format!(
            r#"
            [http]
            read_auth = "yes"
            [[http.tokens]]
            name = "a"
            token_sha256 = "{HASH_A}"
            role = "customer"
            [[http.tokens]]
            name = "b"
            token_sha256 = "not-a-hash"
            role = "viewer"
            [[http.tokens]]
            name = "c"
            token_sha256 = "{HASH_B}"
            role = "root"
            [[http.tokens]]
            name = "a"
            token_sha256 = "{HASH_A}"
            role = "viewer"
            customers = ["acme"]
            [[http.tokens]]
            token_sha256 = "{}"
            role = "customer"
            customers = []
            [[http.tokens]]
            name = "f"
            token_sha256 = "+{}"
            role = "admin"
            secret = "hunter2"
            "#,
            &HASH_B[..63],
            &HASH_B[1..]
        ));
        assert_problem(&p, "http.read_auth", "invalid type");
        assert_problem(&p, "http.tokens[0].customers", "missing");
        assert_problem(&p, "http.tokens[1].token_sha256", "64 digits");
        assert_problem(&p, "http.tokens[2].role", "unknown role `root`");
        assert_problem(&p, "http.tokens[3].name", "duplicate token name `a`");
        assert_problem(
            &p,
            "http.tokens[3].token_sha256",
            "the same token as http.tokens[0]",
        );
        assert_problem(&p, "http.tokens[3].customers", "only for role \"customer\"");
        assert_problem(&p, "http.tokens[4].name", "missing");
        assert_problem(&p, "http.tokens[4].token_sha256", "64 digits");
        assert_problem(&p, "http.tokens[4].customers", "must not be empty");
        assert_problem(&p, "http.tokens[5].secret", "unknown key");
    }

    #[test]
    fn http_token_problem_from_the_environment_names_the_variable() {
        let p = problems_with(
            &format!(
                "[[http.tokens]]\nname = \"x\"\ntoken_sha256 = \"{HASH_A}\"\nrole = \"viewer\"\n"
            ),
            &[("SLASTREAM__HTTP__TOKENS__0__ROLE", "owner")],
        );
        assert_problem(
            &p,
            "http.tokens[0].role",
            "SLASTREAM__HTTP__TOKENS__0__ROLE",
        );
    }
}
