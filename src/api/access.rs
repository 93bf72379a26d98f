//! Who may read and change what (SPEC §4.1), decided in one middleware in
//! front of every route of the API and the web UI.
//!
//! Credentials: `Authorization: Bearer <token>`; for reads also
//! `Authorization: Basic` with the token as password (what a browser sends
//! without JavaScript after the 401 prompt of a UI page); for the UI's
//! mutation forms only the form's own `token` field. Credentials a browser
//! attaches by itself (Basic) never authorize a mutation, so another site
//! cannot make a signed-in browser change anything: the JSON mutations need
//! an explicit Bearer header, the forms a token typed into the form.
//!
//! Tokens are known only by their SHA-256 and compared in constant time.
//! The rule of each route is in [`rule`]; a route missing there needs read
//! access of a role that reads everything, so nothing is left open by
//! mistake. The authenticated [`Caller`] is put in the request's extensions
//! for the handlers that show a customer token only its rows, and for `who`
//! in the audit log.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::config::{Config, Role, TokenDef};

/// Form bodies (the UI's exclusion forms) read to find their token.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// `who` in the audit log for a change made with `http.admin_token`.
pub const ADMIN_NAME: &str = "admin";

/// What the access layer knows: the admin token, the named tokens, whether
/// reads need a token; and `warn_at` for the UI's "at risk" list.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub admin_token: String,
    pub read_auth: bool,
    pub tokens: Vec<TokenDef>,
    /// `alerting.warn_at`: a running clock is at risk from this fraction of
    /// its target.
    pub warn_at: f64,
}

impl ApiOptions {
    pub fn from_config(cfg: &Config) -> ApiOptions {
        ApiOptions {
            admin_token: cfg.http.admin_token.clone(),
            read_auth: cfg.http.read_auth,
            tokens: cfg.http.tokens.clone(),
            warn_at: cfg.alerting.warn_at,
        }
    }
}

/// Only an admin token, reads open (tests and tools).
impl From<String> for ApiOptions {
    fn from(admin_token: String) -> ApiOptions {
        ApiOptions {
            admin_token,
            read_auth: false,
            tokens: Vec::new(),
            warn_at: Config::default().alerting.warn_at,
        }
    }
}

/// An authenticated token.
#[derive(Debug)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Role `customer`: the customers it may read.
    pub customers: BTreeSet<String>,
}

/// Who is asking; in every request's extensions once access is granted.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No token, while reads are open.
    Anonymous,
    Token(Arc<Principal>),
}

impl Caller {
    /// The name recorded as `who` for a change (only admins change anything).
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Token(p) => &p.name,
        }
    }

    /// The customers this caller is limited to; `None` = every customer.
    pub fn only(&self) -> Option<&BTreeSet<String>> {
        match self {
            Caller::Token(p) if p.role == Role::Customer => Some(&p.customers),
            _ => None,
        }
    }

    pub fn may_read(&self, customer: &str) -> bool {
        self.only().is_none_or(|set| set.contains(customer))
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Token(p) if p.role == Role::Admin)
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that matches nothing: 401.
    Unauthorized,
    /// A valid token without the right: 403, the same answer whatever was
    /// asked for (another customer, an unknown one, an aggregate).
    Forbidden,
    /// Mutations need an admin token and none is configured: 403.
    MutationsDisabled,
}

/// The tokens, hashed once at start.
pub struct Access {
    read_auth: bool,
    admin: Option<[u8; 32]>,
    tokens: Vec<(TokenDef, Arc<Principal>)>,
    admin_principal: Arc<Principal>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("read_auth", &self.read_auth)
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Equality of two hashes without an early exit.
fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Access {
    pub fn new(opts: &ApiOptions) -> Access {
        let tokens = opts
            .tokens
            .iter()
            .map(|t| {
                let p = Principal {
                    name: t.name.clone(),
                    role: t.role,
                    customers: t.customers.iter().cloned().collect(),
                };
                (t.clone(), Arc::new(p))
            })
            .collect();
        Access {
            read_auth: opts.read_auth,
            admin: (!opts.admin_token.is_empty()).then(|| sha256(&opts.admin_token)),
            tokens,
            admin_principal: Arc::new(Principal {
                name: ADMIN_NAME.to_string(),
                role: Role::Admin,
                customers: BTreeSet::new(),
            }),
        }
    }

    /// The principal of `token`. Every configured hash is compared, each in
    /// constant time, so the time taken does not depend on which matched.
    fn find(&self, token: &str) -> Option<Arc<Principal>> {
        let h = sha256(token);
        let mut found = None;
        if let Some(admin) = &self.admin {
            if same_hash(admin, &h) {
                found = Some(self.admin_principal.clone());
            }
        }
        for (def, p) in &self.tokens {
            if same_hash(&def.sha256, &h) && found.is_none() {
                found = Some(p.clone());
            }
        }
        found
    }

    fn mutations_enabled(&self) -> bool {
        self.admin.is_some() || self.tokens.iter().any(|(t, _)| t.role == Role::Admin)
    }

    /// Who reads with `token` (from a Bearer or Basic header).
    pub fn reader(&self, token: Option<&str>) -> Result<Caller, Denied> {
        match token {
            None if self.read_auth => Err(Denied::Unauthorized),
            None => Ok(Caller::Anonymous),
            Some(t) => self.find(t).map(Caller::Token).ok_or(Denied::Unauthorized),
        }
    }

    /// Who changes something with `token`: only an admin.
    pub fn mutator(&self, token: Option<&str>) -> Result<Caller, Denied> {
        if !self.mutations_enabled() {
            return Err(Denied::MutationsDisabled);
        }
        let p = token
            .and_then(|t| self.find(t))
            .ok_or(Denied::Unauthorized)?;
        if p.role == Role::Admin {
            Ok(Caller::Token(p))
        } else {
            Err(Denied::Forbidden)
        }
    }
}

/// The access rule of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Health, readiness, metrics, the style sheet.
    Open,
    /// A read of everything or of aggregates: not for customer tokens.
    Read,
    /// A read a customer token may make for its own customers: every
    /// `customer` parameter must be one of them, and with `required` there
    /// must be one. Handlers show such a token only its customers' rows.
    Scoped { required: bool },
    /// A page of the customer named by the path's `{id}`.
    CustomerPath,
    /// A mutation authorized by `Authorization: Bearer` only.
    MutateHeader,
    /// A UI mutation authorized by the form's `token` field only.
    MutateForm,
}

/// The rule of `method` on the route `path` (as registered). Unknown routes
/// need a reader of everything.
pub fn rule(method: &Method, path: Option<&str>) -> Rule {
    let Some(path) = path else {
        return Rule::Read;
    };
    match (method.as_str(), path) {
        (_, "/healthz" | "/readyz" | "/metrics" | crate::ui::STYLE_PATH) => Rule::Open,
        ("GET", "/api/v1/compliance" | "/api/v1/breaches") => Rule::Scoped { required: true },
        ("GET", "/api/v1/report" | "/" | "/customers" | "/report" | "/breaches") => {
            Rule::Scoped { required: false }
        }
        ("GET", "/customers/{id}") => Rule::CustomerPath,
        ("POST", "/api/v1/exclusions") | ("DELETE", "/api/v1/exclusions/{id}") => {
            Rule::MutateHeader
        }
        ("POST", "/exclusions" | "/exclusions/{id}/withdraw") => Rule::MutateForm,
        _ => Rule::Read,
    }
}

/// The token of a Bearer header, or the password of a Basic one.
fn header_token(headers: &HeaderMap, basic: bool) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Some(t.trim().to_string());
    }
    let encoded = value.strip_prefix("Basic ").filter(|_| basic)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    // The user name is free; the password is the token.
    let (_, password) = text.split_once(':')?;
    Some(password.to_string())
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The answer to a refused request: JSON for the API, a page for the UI;
/// either way the same words for every request refused for the same reason.
fn refusal(denied: Denied, api: bool) -> Response {
    let error = match denied {
        Denied::Unauthorized => ApiError::Unauthorized,
        Denied::Forbidden => ApiError::NotAllowed,
        Denied::MutationsDisabled => ApiError::Forbidden,
    };
    if api {
        error.into_response()
    } else {
        crate::ui::refusal(&error)
    }
}

/// The middleware: finds the route's rule, authenticates, checks the
/// customer scope, and passes the [`Caller`] on; refusals are logged with
/// the token's name (never the token).
pub async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let rule = rule(&parts.method, path.as_deref());
    let api = is_api(parts.uri.path());
    let access = st.access.clone();
    let mut body = body;
    let decided: Result<Caller, (Denied, String)> = match rule {
        Rule::Open => return next.run(Request::from_parts(parts, body)).await,
        Rule::MutateHeader => {
            let token = header_token(&parts.headers, false);
            access
                .mutator(token.as_deref())
                .map_err(|d| (d, token_name(&access, token.as_deref())))
        }
        Rule::MutateForm => {
            let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
                Ok(b) => b,
                Err(_) => return refusal_too_large(api),
            };
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
            let token = fields
                .iter()
                .find(|(k, _)| k == "token")
                .map(|(_, v)| v.trim().to_string())
                .filter(|t| !t.is_empty());
            body = Body::from(bytes);
            access
                .mutator(token.as_deref())
                .map_err(|d| (d, token_name(&access, token.as_deref())))
        }
        Rule::Read | Rule::Scoped { .. } | Rule::CustomerPath => {
            let token = header_token(&parts.headers, true);
            match access.reader(token.as_deref()) {
                Err(d) => Err((d, token_name(&access, token.as_deref()))),
                Ok(caller) => match scope_check(rule, &caller, &mut parts).await {
                    true => Ok(caller),
                    false => Err((Denied::Forbidden, caller.name().to_string())),
                },
            }
        }
    };
    match decided {
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err((denied, name)) => {
            tracing::warn!(
                token = %name,
                method = %parts.method,
                path = %parts.uri.path(),
                reason = ?denied,
                "request denied"
            );
            refusal(denied, api)
        }
    }
}

fn refusal_too_large(api: bool) -> Response {
    if api {
        ApiError::TooLarge.into_response()
    } else {
        crate::ui::refusal(&ApiError::TooLarge)
    }
}

/// The name to log for a refused token: its name when it is a known one
/// (refused for its role), else a placeholder.
fn token_name(access: &Access, token: Option<&str>) -> String {
    match token.and_then(|t| access.find(t)) {
        Some(p) => p.name.clone(),
        None if token.is_some() => "(unknown token)".to_string(),
        None => "(none)".to_string(),
    }
}

/// Whether `caller` may make this read. Readers of everything may; a
/// customer token only where the rule lets it, for its own customers.
async fn scope_check(rule: Rule, caller: &Caller, parts: &mut axum::http::request::Parts) -> bool {
    let Some(own) = caller.only() else {
        return true;
    };
    match rule {
        Rule::Scoped { required } => {
            // Every occurrence counts: the handler must never see a
            // customer this token may not read.
            let Ok(Query(params)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) else {
                return false;
            };
            let mut named = params.iter().filter(|(k, _)| k == "customer").peekable();
            if required && named.peek().is_none() {
                return false;
            }
            named.all(|(_, c)| own.contains(c))
        }
        Rule::CustomerPath => match Path::<String>::from_request_parts(parts, &()).await {
            Ok(Path(id)) => own.contains(&id),
            Err(_) => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, token: &str, role: Role, customers: &[&str]) -> TokenDef {
        TokenDef {
            name: name.into(),
            sha256: sha256(token),
            role,
            customers: customers.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn access(admin: &str, read_auth: bool) -> Access {
        Access::new(&ApiOptions {
            admin_token: admin.into(),
            read_auth,
            tokens: vec![
                def("ops", "t-admin", Role::Admin, &[]),
                def("lead", "t-view", Role::Viewer, &[]),
                def("acme-portal", "t-acme", Role::Customer, &["acme"]),
            ],
            warn_at: 0.75,
        })
    }

    #[test]
    fn tokens_resolve_to_their_roles() {
        let a = access("root", true);
        assert!(matches!(a.reader(None), Err(Denied::Unauthorized)));
        assert!(matches!(a.reader(Some("nope")), Err(Denied::Unauthorized)));
        assert_eq!(
            a.reader(Some("t-view")).map(|c| c.name().to_string()),
            Ok("lead".into())
        );
        let c = a.reader(Some("t-acme")).expect("customer");
        assert!(c.may_read("acme") && !c.may_read("globex"));
        let root = a.mutator(Some("root")).expect("admin token");
        assert_eq!(root.name(), ADMIN_NAME);
        assert!(root.is_admin());
        assert_eq!(
            a.mutator(Some("t-admin")).map(|c| c.name().to_string()),
            Ok("ops".into())
        );
        assert!(matches!(a.mutator(Some("t-view")), Err(Denied::Forbidden)));
        assert!(matches!(a.mutator(Some("t-acme")), Err(Denied::Forbidden)));
        assert!(matches!(a.mutator(None), Err(Denied::Unauthorized)));
        let open = access("", false);
        assert!(matches!(open.reader(None), Ok(Caller::Anonymous)));
        assert!(
            open.mutator(Some("t-admin")).is_ok(),
            "a named admin token enables mutations"
        );
    }

    #[test]
    fn without_any_admin_token_mutations_are_disabled() {
        let a = Access::new(&ApiOptions::from(String::new()));
        assert!(matches!(
            a.mutator(Some("x")),
            Err(Denied::MutationsDisabled)
        ));
        assert!(matches!(a.mutator(None), Err(Denied::MutationsDisabled)));
    }

    #[test]
    fn basic_credentials_count_for_reads_only() {
        let mut h = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:t-view");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().expect("header"),
        );
        assert_eq!(header_token(&h, true).as_deref(), Some("t-view"));
        assert_eq!(header_token(&h, false), None);
        h.insert(
            header::AUTHORIZATION,
            "Bearer t-acme".parse().expect("header"),
        );
        assert_eq!(header_token(&h, false).as_deref(), Some("t-acme"));
    }

    #[test]
    fn unknown_routes_need_a_reader_of_everything() {
        assert_eq!(rule(&Method::GET, None), Rule::Read);
        assert_eq!(rule(&Method::GET, Some("/api/v1/audit")), Rule::Read);
        assert_eq!(rule(&Method::GET, Some("/healthz")), Rule::Open);
        assert_eq!(rule(&Method::POST, Some("/exclusions")), Rule::MutateForm);
        assert_eq!(rule(&Method::GET, Some("/exclusions")), Rule::Read);
    }
}
