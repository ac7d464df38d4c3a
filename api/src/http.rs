//! What every route shares: the state handlers get ([`ApiContext`]), the limits of one
//! request, authentication by API key from the headers, and bodies read only up to their
//! route's limit. The routes themselves live with their feature (`server`, `links`,
//! `webhooks`), each of which uses this and none of which uses another.

use crate::error::code;
use crate::graphql::RapportSchema;
use crate::keys::VerifiedKeys;
use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rapport_engine::platform::health::Health;
use sea_orm::DatabaseConnection;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What every handler shares: the database, the schema and the verified keys. One
/// allocation: axum clones the state into every layer of every request, and a clone of
/// the fields one by one (a score of reference counts, touched from both cores) cost a
/// page of contacts on SQLite a quarter of its CPU.
#[derive(Clone)]
pub struct ApiContext(Arc<Shared>);

impl std::ops::Deref for ApiContext {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl ApiContext {
    /// The context holding `shared`.
    pub(crate) fn new(shared: Shared) -> Self {
        ApiContext(Arc::new(shared))
    }
}

/// The fields of [`ApiContext`].
pub struct Shared {
    pub(crate) db: DatabaseConnection,
    pub(crate) schema: RapportSchema,
    /// Plans of the documents the schema has validated, for planned execution.
    pub(crate) plans: Arc<crate::plans::Plans>,
    pub(crate) keys: Arc<VerifiedKeys>,
    pub(crate) limits: Limits,
    pub(crate) health: Arc<Health>,
    pub(crate) trusted_proxies: Arc<[std::net::IpAddr]>,
    /// Whether `GET /graphql` serves GraphiQL to browsers.
    pub(crate) graphiql: bool,
    /// Who may introspect the schema.
    pub(crate) introspection: crate::graphql_http::Introspection,
    /// Persisted documents.
    pub(crate) documents: Arc<crate::graphql_http::Documents>,
    /// Web origins whose pages may call the API (CORS).
    pub(crate) cors_origins: Arc<[rapport_engine::engagement::capture::keys::WebOrigin]>,
    /// Lead capture's per-address and per-key budgets.
    pub(crate) capture: Arc<crate::capture::Budgets>,
    /// Where email goes (double opt-in confirmations of captures), if anywhere.
    pub(crate) mail: Option<crate::graphql::Mail>,
    /// Where people reach the server, without a trailing slash, for links in email.
    pub(crate) public_url: Arc<str>,
    /// How console sessions behave.
    pub(crate) session_settings: crate::sessions::SessionSettings,
    /// Sign-in budgets per address.
    pub(crate) sessions: Arc<crate::sessions::Budgets>,
    /// Requests per API key or console session ([`Limits::requests_per_minute`]).
    pub(crate) requests: Arc<crate::rate_limit::Buckets<Caller>>,
    /// Inbound webhook calls per API key ([`Limits::inbound_webhooks_per_minute`]).
    pub(crate) inbound: Arc<crate::rate_limit::Buckets<Caller>>,
    /// What `/metrics` reports of the HTTP side.
    pub(crate) metrics: crate::metrics::Shared,
    /// The bearer token `/metrics` answers (off without one).
    pub(crate) metrics_token: Option<Arc<str>>,
    /// The open subscription sockets of each caller.
    pub(crate) sockets: Arc<crate::subscriptions::Sockets>,
}

/// Whose request budget: the workspace, the key, the console person.
pub(crate) type Caller = (i64, Option<i64>, Option<i64>);

/// The request budget of [`Limits::requests_per_minute`]: a minute's worth may come at once.
pub(crate) fn request_budget(limits: &Limits) -> crate::rate_limit::Buckets<Caller> {
    per_minute(limits.requests_per_minute)
}

/// The budget of [`Limits::inbound_webhooks_per_minute`], kept apart from the API's: a
/// mail provider's burst of bounce reports does not spend the app's requests.
pub(crate) fn inbound_budget(limits: &Limits) -> crate::rate_limit::Buckets<Caller> {
    per_minute(limits.inbound_webhooks_per_minute)
}

fn per_minute(n: u32) -> crate::rate_limit::Buckets<Caller> {
    let per_minute = f64::from(n.max(1));
    crate::rate_limit::Buckets::new(per_minute / 60.0, per_minute)
}

/// How much one request may ask of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of a JSON body (GraphQL, webhooks).
    pub json_body_bytes: usize,
    /// Bytes of a multipart body (a plugin upload with its GraphQL operation).
    pub upload_bytes: usize,
    /// How long a request may run before it is answered with a timeout.
    pub request_timeout: Duration,
    /// How long a multipart request may run: it carries a plugin, whose compilation
    /// takes seconds to minutes on a small machine (an 18 MB Python component).
    pub upload_timeout: Duration,
    /// Query complexity one API key may spend per second (each request costs at most
    /// [`crate::graphql::MAX_COMPLEXITY`]; a key may save up ten requests' worth).
    pub key_cost_per_second: u64,
    /// Requests one API key or console session may make per minute (a minute's worth
    /// may come at once); past it, 429 `RATE_LIMITED` with `Retry-After`.
    pub requests_per_minute: u32,
    /// Inbound webhook calls (bounce reports) one API key may make per minute, apart
    /// from [`Self::requests_per_minute`]; past it, 429 `RATE_LIMITED`.
    pub inbound_webhooks_per_minute: u32,
}

/// The defaults of [`Limits`], which the command line's flags also start from.
pub const DEFAULT_LIMITS: Limits = Limits {
    json_body_bytes: 1024 * 1024,
    upload_bytes: 64 * 1024 * 1024,
    request_timeout: Duration::from_secs(30),
    upload_timeout: Duration::from_secs(300),
    key_cost_per_second: 5_000_000,
    requests_per_minute: 600,
    inbound_webhooks_per_minute: 6000,
};

impl Default for Limits {
    fn default() -> Self {
        DEFAULT_LIMITS
    }
}

/// How long a verified API key is trusted before it is checked again, by default.
pub const DEFAULT_KEY_TTL: Duration = Duration::from_secs(5);

/// The address links in emails start with, when none is configured.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl ApiContext {
    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// What one request may ask.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Proxies whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &[std::net::IpAddr] {
        &self.trusted_proxies
    }
}

/// A JSON error in the GraphQL errors shape, for requests that never reach GraphQL.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut extensions = json!({"code": code});
    crate::request_id::stamp(&mut extensions);
    (
        status,
        Json(json!({"data": null, "errors": [{"message": message, "extensions": extensions}]})),
    )
        .into_response()
}

/// A 429 `RATE_LIMITED` answer saying `message`, with `Retry-After` for `wait`.
pub fn too_many(wait: Duration, message: &str) -> Response {
    let mut refused = error_response(StatusCode::TOO_MANY_REQUESTS, code::RATE_LIMITED, message);
    if let Ok(v) = axum::http::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        refused.headers_mut().insert(header::RETRY_AFTER, v);
    }
    refused
}

/// Where a request came from: its peer, or the client a trusted proxy names.
pub fn request_ip(ctx: &ApiContext, request: &Request) -> Option<std::net::IpAddr> {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    crate::links::client_ip(peer, request.headers(), ctx.trusted_proxies())
}

/// The caller of a request: an API key (`Authorization: Bearer`), or a console session
/// (its cookie and its `X-CSRF-Token` header), or the response refusing it. A request
/// with a key is judged by the key alone.
pub async fn authenticate(
    ctx: &ApiContext,
    headers: &HeaderMap,
) -> Result<rapport_engine::platform::auth::Principal, Response> {
    spend(ctx, headers, &ctx.requests, ctx.limits.requests_per_minute).await
}

/// [`authenticate`] for inbound webhooks (a mail provider's bounce reports): the same
/// checks, spending from their own budget.
pub async fn authenticate_inbound(
    ctx: &ApiContext,
    headers: &HeaderMap,
) -> Result<rapport_engine::platform::auth::Principal, Response> {
    let limit = ctx.limits.inbound_webhooks_per_minute;
    spend(ctx, headers, &ctx.inbound, limit).await
}

async fn spend(
    ctx: &ApiContext,
    headers: &HeaderMap,
    budget: &crate::rate_limit::Buckets<Caller>,
    per_minute: u32,
) -> Result<rapport_engine::platform::auth::Principal, Response> {
    let principal = identify(ctx, headers).await?;
    let caller = (principal.workspace_id, principal.key_id, principal.user_id);
    if let Err(wait) = budget.take(caller, 1.0) {
        return Err(too_many(
            wait,
            &format!(
                "more than {per_minute} requests a minute with this API key or session; retry in {} s",
                wait.as_secs().max(1)
            ),
        ));
    }
    rapport_engine::platform::audit::identify(principal.key_id, principal.user_id);
    Ok(principal)
}

/// Runs a request within an audit trail holding where it came from; [`authenticate`]
/// adds who sent it, and the mutations it runs are recorded with both.
pub async fn audit_trail(
    axum::extract::State(ctx): axum::extract::State<ApiContext>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let actor = rapport_engine::platform::audit::Actor::from_request(
        request_ip(&ctx, &request).map(|ip| ip.to_string()),
        request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    rapport_engine::platform::audit::within(actor, next.run(request)).await
}

/// The caller a request's headers name, verified.
async fn identify(
    ctx: &ApiContext,
    headers: &HeaderMap,
) -> Result<rapport_engine::platform::auth::Principal, Response> {
    let Some(key) = bearer(headers) else {
        if let Some(token) = crate::sessions::session_token(headers) {
            return crate::sessions::principal_of_session(ctx, headers, token).await;
        }
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "missing 'Authorization: Bearer <api key>' header (or a console session)",
        ));
    };
    match ctx.keys.principal(&ctx.db, key).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "the API key is unknown or revoked",
        )),
        Err(e) => {
            tracing::error!(error = ?e, "authentication failed");
            Err(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "internal error",
            ))
        }
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Reads a request's body after its caller was authenticated, up to `limit` bytes: a
/// declared length over the limit is refused before reading, an undeclared one as soon
/// as it passes the limit.
pub async fn bounded_body(request: Request, limit: usize) -> Result<Request, Response> {
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::VALIDATION,
            &format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Whether the request declares a JSON body (`application/json`, any parameters).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

pub(crate) fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("multipart/"))
}
