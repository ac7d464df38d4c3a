//! The HTTP server: GraphQL (with GraphiQL), health, authentication.
//!
//! Limits hold before work is done: the caller's key is checked from the headers before
//! a byte of the body is read, the body is read only up to the route's limit (a
//! `Content-Length` over it is refused without reading), the query document and its
//! variables are measured before they are parsed into typed inputs, and every request
//! has a deadline.

use crate::error::code;
use crate::graphql;
use crate::keys::VerifiedKeys;
use async_graphql_axum::GraphQLRequest;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rapport_engine::platform::health::{Health, LoopState};
use sea_orm::DatabaseConnection;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

use crate::graphql_http;
pub use crate::graphql_http::Introspection;
pub use crate::http::{ApiContext, DEFAULT_KEY_TTL, DEFAULT_LIMITS, DEFAULT_PUBLIC_URL, Limits};
use crate::http::{authenticate, bounded_body, error_response, is_json, is_multipart};

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a verified API key is trusted before it is checked again.
    pub key_ttl: Duration,
    /// Where people reach the server, for links in emails.
    pub public_url: String,
    /// Where email goes; without it, confirmation emails are not sent (the link is still
    /// returned to the caller).
    pub mail: Option<graphql::Mail>,
    /// Where compiled plugins are cached on disk (in memory only when `None`).
    pub plugin_cache: Option<std::path::PathBuf>,
    /// A plugin host built by the caller, shared with the job workers (one wasmtime engine
    /// and epoch thread per process); when `None`, the router builds its own.
    pub plugins: Option<rapport_engine::intelligence::plugins::Host>,
    /// The time drip sequences run on (enrollments made over the API start then).
    pub clock: Arc<dyn rapport_engine::clock::Clock>,
    /// Body sizes and the request deadline.
    pub limits: Limits,
    /// Serve GraphiQL to browsers at `GET /graphql`.
    pub graphiql: bool,
    /// Who may introspect the schema.
    pub introspection: Introspection,
    /// Persisted documents: automatic (any client registers), or only a trusted list.
    pub documents: Arc<graphql_http::Documents>,
    /// Where this process's background loops report; `/readyz` reads it.
    pub health: Arc<Health>,
    /// Reverse proxies in front of the server, whose `X-Forwarded-For` names the client
    /// (needs the router served with connect info, as `rapport serve` does).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Web origins whose pages may call `/graphql` (CORS); none by default.
    pub cors_origins: Vec<rapport_engine::engagement::capture::keys::WebOrigin>,
    /// Lead capture's per-address and per-key request budgets.
    pub capture: crate::capture::CaptureLimits,
    /// Console sessions: their lifetime and the sign-in budget per address.
    pub sessions: crate::sessions::SessionSettings,
    /// Which webhook endpoints may be registered (the workers have their own copy).
    pub webhooks: rapport_engine::integrations::webhooks::Settings,
    /// The bearer token `/metrics` answers; without one it is off.
    pub metrics_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key_ttl: DEFAULT_KEY_TTL,
            public_url: DEFAULT_PUBLIC_URL.into(),
            mail: None,
            plugin_cache: None,
            plugins: None,
            clock: rapport_engine::clock::system(),
            limits: Limits::default(),
            graphiql: true,
            introspection: Introspection::On,
            documents: Arc::new(graphql_http::Documents::automatic()),
            health: Arc::default(),
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            capture: crate::capture::DEFAULT_CAPTURE_LIMITS,
            sessions: crate::sessions::DEFAULT_SESSION_SETTINGS,
            webhooks: rapport_engine::integrations::webhooks::Settings::new(),
            metrics_token: None,
        }
    }
}

/// The router over `db`, with the default configuration.
pub fn router(db: DatabaseConnection) -> Router {
    router_with(db, Config::default())
}

/// The router over `db`, configured.
pub fn router_with(db: DatabaseConnection, config: Config) -> Router {
    let keys = Arc::new(VerifiedKeys::new(config.key_ttl));
    let public = graphql::PublicUrl(config.public_url.trim_end_matches('/').to_string());
    let public_url: Arc<str> = public.0.clone().into();
    let plugins = match config.plugins {
        Some(host) => Some(host),
        None => {
            match graphql::plugin_host(&db, keys.clone(), public.clone(), config.plugin_cache) {
                Ok(host) => Some(host),
                Err(e) => {
                    tracing::error!(error = %e, "serving without plugins");
                    None
                }
            }
        }
    };
    let budget = graphql::cost_budget::CostBudget::new(
        config.limits.key_cost_per_second,
        10 * graphql::MAX_COMPLEXITY as u64,
    );
    let ctx = ApiContext::new(crate::http::Shared {
        plans: Arc::new(crate::plans::Plans::new(budget.clone())),
        schema: graphql::build(
            db.clone(),
            keys.clone(),
            public,
            graphql::Services {
                mail: config.mail.clone(),
                plugins,
                clock: config.clock,
                webhooks: config.webhooks,
                live: rapport_engine::platform::live::Live::start(
                    db.clone(),
                    config.health.clone(),
                ),
            },
            budget,
        ),
        db,
        keys,
        limits: config.limits,
        health: config.health,
        trusted_proxies: config.trusted_proxies.into(),
        graphiql: config.graphiql,
        introspection: config.introspection,
        documents: config.documents,
        cors_origins: config.cors_origins.into(),
        capture: Arc::new(crate::capture::Budgets::new(config.capture)),
        mail: config.mail,
        public_url,
        session_settings: config.sessions,
        sessions: Arc::new(crate::sessions::Budgets::new(config.sessions)),
        requests: Arc::new(crate::http::request_budget(&config.limits)),
        inbound: Arc::new(crate::http::inbound_budget(&config.limits)),
        metrics: Arc::default(),
        metrics_token: config.metrics_token.map(Arc::from),
        sockets: Arc::default(),
    });
    let graphql_route = get(graphql_get)
        .post(graphql_handler)
        .options(crate::cors::graphql_preflight)
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            crate::cors::graphql_answers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            crate::http::audit_trail,
        ));
    let mut router = Router::new();
    if config.graphiql {
        router = router.route("/graphiql/{file}", get(graphiql_asset));
    }
    router
        .route("/graphql", graphql_route)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::links::router())
        .merge(crate::capture::router())
        .merge(crate::webhooks::router())
        .merge(crate::downloads::router())
        .merge(crate::sessions::router())
        .merge(crate::console::router())
        .merge(crate::metrics::router())
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config
                .limits
                .request_timeout
                .max(config.limits.upload_timeout)
                + Duration::from_secs(5),
        ))
        .layer(TraceLayer::new_for_http())
        // Outermost: the id's span holds every other layer's logs.
        .layer(axum::middleware::from_fn(crate::request_id::assign))
        .with_state(ctx)
}

/// Headers every response carries: no framing (clickjacking), no referrer leaving with a
/// signed link in it, no content sniffing; HTML pages also get a content security policy
/// of their own (see [`crate::links`] and [`graphiql`]).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

/// GraphiQL (4.1, with React 18), embedded in the binary so the page loads nothing from
/// elsewhere: `api/assets/graphiql`, licences beside the files.
const GRAPHIQL_ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "start.js",
        "text/javascript",
        include_bytes!("../assets/graphiql/start.js"),
    ),
    (
        "page.css",
        "text/css",
        include_bytes!("../assets/graphiql/page.css"),
    ),
];

/// The page's scripts and styles come from this server only; GraphiQL sets inline
/// styles on its elements and its stylesheet inlines its fonts and icons.
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

async fn graphiql() -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, GRAPHIQL_CSP)],
        Html(include_str!("../assets/graphiql/index.html")),
    )
        .into_response()
}

async fn graphiql_asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match GRAPHIQL_ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/readyz`: the database answers and every background loop of this process runs.
async fn readyz(State(ctx): State<ApiContext>) -> Response {
    let database = ctx.db.ping().await;
    let loops: serde_json::Map<String, serde_json::Value> = ctx
        .health
        .snapshot()
        .into_iter()
        .map(|(name, state)| {
            let v = match state {
                LoopState::Running => json!({"status": "running"}),
                LoopState::Stopped => json!({"status": "stopped"}),
                LoopState::Restarting {
                    error,
                    since,
                    retry_in,
                } => json!({
                    "status": "restarting",
                    "error": error,
                    "since": since,
                    "retryInSeconds": retry_in.as_secs_f64(),
                }),
            };
            (name.to_string(), v)
        })
        .collect();
    let ready = database.is_ok() && ctx.health.all_running();
    if let Err(e) = &database {
        tracing::error!(error = %e, "readiness check: the database does not answer");
    }
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": if database.is_ok() { "ok" } else { "unavailable" },
        "loops": loops,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn healthz(State(ctx): State<ApiContext>) -> Response {
    match ctx.db.ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

/// `GET /graphql`: a WebSocket upgrade opens a subscription socket; a browser asking for
/// a page without a query gets GraphiQL; anything else is a query over GET (never a
/// mutation: 405), answered as `Accept` asks.
#[tracing::instrument(name = "graphql", skip_all, fields(workspace = tracing::field::Empty))]
async fn graphql_get(State(ctx): State<ApiContext>, request: Request) -> Response {
    if crate::subscriptions::is_upgrade(request.headers()) {
        return crate::subscriptions::upgrade(ctx, request).await;
    }
    let query_string = request.uri().query().unwrap_or_default().to_string();
    if query_string.is_empty() && ctx.graphiql && graphql_http::wants_html(request.headers()) {
        return graphiql().await;
    }
    let Some(media) = graphql_http::negotiate(accept(request.headers())) else {
        return not_acceptable();
    };
    let principal = match authenticate(&ctx, request.headers()).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    tracing::Span::current().record("workspace", principal.workspace_id);
    match graphql_http::from_query_string(&query_string) {
        Ok(params) => run(&ctx, principal, params, media, None).await,
        Err(message) => {
            graphql_http::request_error(media, StatusCode::BAD_REQUEST, code::VALIDATION, &message)
        }
    }
}

fn accept(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())
}

fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        code::VALIDATION,
        "this endpoint answers application/json or application/graphql-response+json",
    )
}

/// `POST /graphql`: a JSON body (`{query, operationName, variables, extensions}`), or a
/// multipart upload. The key is checked from the headers before the body is read.
#[tracing::instrument(name = "graphql", skip_all, fields(workspace = tracing::field::Empty))]
async fn graphql_handler(State(ctx): State<ApiContext>, request: Request) -> Response {
    let Some(media) = graphql_http::negotiate(accept(request.headers())) else {
        return not_acceptable();
    };
    // The key first, from the headers alone: an unauthenticated caller's body is never read.
    let principal = match authenticate(&ctx, request.headers()).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    tracing::Span::current().record("workspace", principal.workspace_id);
    let idempotency_key = match crate::idempotency::from_headers(request.headers()) {
        Ok(key) => key,
        Err(message) => return crate::idempotency::malformed(&message),
    };
    if is_multipart(request.headers()) {
        return upload(&ctx, principal, request, media).await;
    }
    if !is_json(request.headers()) {
        return graphql_http::request_error(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::VALIDATION,
            "send the request as Content-Type: application/json (or multipart/form-data for uploads)",
        );
    }
    let request = match bounded_body(request, ctx.limits.json_body_bytes).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let body = match axum::body::to_bytes(request.into_body(), ctx.limits.json_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return graphql_http::request_error(
                media,
                StatusCode::PAYLOAD_TOO_LARGE,
                code::VALIDATION,
                "the request body is too large",
            );
        }
    };
    match graphql_http::from_json(&body) {
        Ok(params) => run(&ctx, principal, params, media, Some(idempotency_key)).await,
        Err(message) => graphql_http::request_error(
            media,
            StatusCode::BAD_REQUEST,
            code::VALIDATION,
            &rapport_engine::values::excerpt_long(&message),
        ),
    }
}

/// A multipart request: a plugin upload with its operation (GraphQL multipart spec).
async fn upload(
    ctx: &ApiContext,
    principal: rapport_engine::platform::auth::Principal,
    request: Request,
    media: graphql_http::MediaType,
) -> Response {
    // Streamed, not buffered: the files go to temporary files as they arrive (a CSV
    // import may be tens of megabytes), and the stream ends where the limit is passed.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > ctx.limits.upload_bytes as u64) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::VALIDATION,
            &format!(
                "the request body is larger than {} bytes",
                ctx.limits.upload_bytes
            ),
        );
    }
    let (request, too_large) = streamed_body(request, ctx.limits.upload_bytes);
    let request =
        match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
            request,
            &(),
        )
        .await
        {
            Ok(r) => r.into_inner(),
            Err(_) if too_large.load(std::sync::atomic::Ordering::Relaxed) => {
                return graphql_http::request_error(
                    media,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    code::VALIDATION,
                    &format!(
                        "the upload is larger than {} bytes",
                        ctx.limits.upload_bytes
                    ),
                );
            }
            Err(e) => {
                return graphql_http::request_error(
                    media,
                    StatusCode::BAD_REQUEST,
                    code::VALIDATION,
                    &format!(
                        "the request is not a GraphQL request: {}",
                        rapport_engine::values::excerpt_long(&e.0.to_string())
                    ),
                );
            }
        };
    if ctx.documents.is_trusted_only() {
        let mut params = graphql_http::Params {
            query: Some(request.query.clone()),
            ..Default::default()
        };
        if ctx.documents.resolve(&mut params).is_err() {
            return not_trusted(media);
        }
    }
    if let Some(refused) = over_limits(&request, media) {
        return refused;
    }
    execute(
        ctx,
        principal,
        request,
        None,
        media,
        ctx.limits.upload_timeout,
    )
    .await
}

/// The request with a body that fails once more than `limit` bytes came (the flag then
/// says so).
fn streamed_body(request: Request, limit: usize) -> (Request, Arc<std::sync::atomic::AtomicBool>) {
    use futures_util::StreamExt;
    let too_large = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = too_large.clone();
    let (parts, body) = request.into_parts();
    let mut seen = 0usize;
    let limited = body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        seen += chunk.len();
        if seen > limit {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(axum::Error::new(std::io::Error::other("too large")));
        }
        Ok(chunk)
    });
    (
        Request::from_parts(parts, axum::body::Body::from_stream(limited)),
        too_large,
    )
}

fn not_trusted(media: graphql_http::MediaType) -> Response {
    graphql_http::request_error(
        media,
        StatusCode::FORBIDDEN,
        code::FORBIDDEN,
        "this server runs only its trusted documents",
    )
}

/// How a request came: over GET (queries only), or POST with or without an
/// `Idempotency-Key`.
type Post = Option<Option<rapport_engine::platform::idempotency::IdempotencyKey>>;

/// Resolves a persisted document, refuses a mutation over GET, and executes (a mutation
/// with an `Idempotency-Key` once per key).
async fn run(
    ctx: &ApiContext,
    principal: rapport_engine::platform::auth::Principal,
    mut params: graphql_http::Params,
    media: graphql_http::MediaType,
    post: Post,
) -> Response {
    use graphql_http::DocumentError;
    let register = match ctx.documents.resolve(&mut params) {
        Ok(register) => register,
        Err(DocumentError::NotFound) => {
            // Apollo's clients send the document on this answer, which registers it.
            let status = match media {
                graphql_http::MediaType::Json => StatusCode::OK,
                graphql_http::MediaType::GraphqlResponse => StatusCode::BAD_REQUEST,
            };
            return graphql_http::request_error(
                media,
                status,
                "PERSISTED_QUERY_NOT_FOUND",
                "PersistedQueryNotFound",
            );
        }
        Err(DocumentError::NotTrusted) => return not_trusted(media),
        Err(DocumentError::Invalid(message)) => {
            return graphql_http::request_error(
                media,
                StatusCode::BAD_REQUEST,
                code::VALIDATION,
                &message,
            );
        }
    };
    let query = params.query.take().unwrap_or_default();
    let mut request = async_graphql::Request::new(query).variables(
        async_graphql::Variables::from_json(serde_json::Value::Object(params.variables)),
    );
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    // Measured before it is parsed again, or kept for later requests.
    if let Some(refused) = over_limits(&request, media) {
        return refused;
    }
    if let Some(hash) = register {
        ctx.documents.register(hash, &request.query);
    }
    use async_graphql::parser::types::OperationType;
    // A document with a plan is a query the schema has run: no need to parse it again.
    let planned = ctx
        .plans
        .get(&request.query, request.operation_name.as_deref());
    let (planned, operation) = match planned {
        Some(plan) => {
            let name = plan.name.clone();
            (Some(plan), Some((OperationType::Query, name)))
        }
        None => match async_graphql::parser::parse_query(&request.query) {
            Ok(doc) => {
                let wanted = request.operation_name.as_deref();
                // Another text of a shape the schema has run (values written into it).
                let planned = ctx.plans.for_shape(&doc, wanted);
                (planned, graphql_http::operation_of(&doc, wanted))
            }
            Err(_) => (None, None),
        },
    };
    let kind = operation.as_ref().map(|(kind, _)| *kind);
    ctx.metrics.operation(
        operation.as_ref().and_then(|(_, name)| name.as_deref()),
        match kind {
            Some(OperationType::Mutation) => "mutation",
            Some(OperationType::Subscription) => "subscription",
            _ => "query",
        },
    );
    let Some(idempotency_key) = post else {
        if let Some(OperationType::Mutation | OperationType::Subscription) = kind {
            let mut refused = graphql_http::request_error(
                media,
                StatusCode::METHOD_NOT_ALLOWED,
                code::VALIDATION,
                "mutations are sent with POST, never GET",
            );
            refused
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return refused;
        }
        return execute(
            ctx,
            principal,
            request,
            planned,
            media,
            ctx.limits.request_timeout,
        )
        .await;
    };
    match (idempotency_key, kind) {
        (Some(key), Some(OperationType::Mutation)) => {
            idempotent(ctx, principal, request, media, &key).await
        }
        _ => {
            execute(
                ctx,
                principal,
                request,
                planned,
                media,
                ctx.limits.request_timeout,
            )
            .await
        }
    }
}

/// Runs a mutation once per `Idempotency-Key`: a retry of the same request gets the
/// first answer again, without running.
async fn idempotent(
    ctx: &ApiContext,
    principal: rapport_engine::platform::auth::Principal,
    request: async_graphql::Request,
    media: graphql_http::MediaType,
    key: &rapport_engine::platform::idempotency::IdempotencyKey,
) -> Response {
    let variables = serde_json::to_string(&request.variables).unwrap_or_default();
    let fingerprint = rapport_engine::platform::idempotency::fingerprint(&[
        "graphql",
        &request.query,
        request.operation_name.as_deref().unwrap_or_default(),
        &variables,
    ]);
    if graphql_http::reveals_secret(&request.query) {
        // The kept answer would hold the secret in clear for a day.
        return graphql_http::request_error(
            media,
            StatusCode::BAD_REQUEST,
            code::VALIDATION,
            "an Idempotency-Key is not taken for requests whose answer holds a secret \
             (createApiKey, createIngestKey, inviteUser, or a signed confirmUrl, unsubscribeUrl or \
             preferencesUrl); check whether the first request took effect instead",
        );
    }
    let ws = principal.workspace_id;
    let caller = crate::idempotency::caller_of(&principal);
    let claim = match crate::idempotency::begin(ctx, ws, &caller, key, &fingerprint, |body| {
        graphql_http::replayed(media, &body)
    })
    .await
    {
        crate::idempotency::Begun::Run(claim) => claim,
        crate::idempotency::Begun::Answer(answer) => return answer,
    };
    use crate::idempotency::Outcome;
    let response = match run_request(
        ctx,
        principal,
        request,
        ctx.limits.request_timeout,
        std::time::Instant::now(),
    )
    .await
    {
        Ok(response) => response,
        Err(timed_out) => {
            // It may have committed before it was cut off: retries are told so, for the
            // whole retention, rather than run it again.
            crate::idempotency::finish(ctx, claim, Outcome::Unknown).await;
            return timed_out;
        }
    };
    // The key goes back only when nothing ran (the document did not parse, validate or
    // fit the limits: errors without a path, no data). Once any field ran, even a failed
    // answer is kept: an earlier field of the same request may have committed.
    let nothing_ran = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let body = serde_json::to_string(&response).unwrap_or_default();
    let outcome = if nothing_ran {
        Outcome::Released
    } else {
        Outcome::Answered(&body)
    };
    crate::idempotency::finish(ctx, claim, outcome).await;
    graphql_http::executed(media, response)
}

/// The refusal of a document or variables past the request limits, measured before
/// anything parses them into typed inputs (once per request, by its one caller).
fn over_limits(
    request: &async_graphql::Request,
    media: graphql_http::MediaType,
) -> Option<Response> {
    crate::request_limits::check(request).err().map(|e| {
        graphql_http::request_error(
            media,
            StatusCode::BAD_REQUEST,
            code::VALIDATION,
            &e.to_string(),
        )
    })
}

/// Executes one GraphQL request within `timeout`: from `planned`, its document's plan, when
/// it has one and the plan can answer, else on the schema with the caller's loaders. The
/// caller has checked it against the request limits ([`over_limits`]).
async fn execute(
    ctx: &ApiContext,
    principal: rapport_engine::platform::auth::Principal,
    mut request: async_graphql::Request,
    planned: Option<Arc<crate::plans::Plan>>,
    media: graphql_http::MediaType,
    timeout: Duration,
) -> Response {
    if !may_introspect(ctx, &principal) && graphql_http::introspects(&request.query) {
        return introspection_refused(media);
    }
    let started = std::time::Instant::now();
    let mut paid = false;
    if let Some(plan) = planned {
        let answer = ctx
            .plans
            .answer(&ctx.db, &principal, &plan, &request.variables);
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(body)) => {
                ctx.metrics.planned();
                return graphql_http::answered(media, body);
            }
            Ok(Err(fallback)) => paid = fallback == crate::plans::Fallback::Charged,
            Err(_) => return timed_out(timeout),
        }
    }
    if paid {
        request = request.data(graphql::cost_budget::Paid);
    }
    let (query, operation) = (request.query.clone(), request.operation_name.clone());
    match run_request(ctx, principal, request, timeout, started).await {
        Ok(response) => {
            // Passed the schema's validation: later requests of it may run from a plan.
            if response.errors.iter().all(|e| !e.path.is_empty()) {
                ctx.plans.learn(&query, operation.as_deref());
            }
            graphql_http::executed(media, response)
        }
        Err(refused) => refused,
    }
}

fn timed_out(timeout: Duration) -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        code::TIMEOUT,
        &format!(
            "the request ran longer than {} s; ask for less at once",
            timeout.as_secs()
        ),
    )
}

fn may_introspect(ctx: &ApiContext, principal: &rapport_engine::platform::auth::Principal) -> bool {
    match ctx.introspection {
        Introspection::On => true,
        Introspection::Off => false,
        Introspection::Admin => principal.can(rapport_engine::values::Scope::Admin),
    }
}

fn introspection_refused(media: graphql_http::MediaType) -> Response {
    // Said plainly rather than answered with nulls; disabled underneath as well.
    graphql_http::request_error(
        media,
        StatusCode::FORBIDDEN,
        code::FORBIDDEN,
        "this server does not answer introspection (__schema, __type) to this key",
    )
}

/// Runs a request: the GraphQL response, or the HTTP answer when it ran out of time (what
/// a plan used of it since `started` is gone: one request, one time limit).
async fn run_request(
    ctx: &ApiContext,
    principal: rapport_engine::platform::auth::Principal,
    mut request: async_graphql::Request,
    timeout: Duration,
    started: std::time::Instant,
) -> Result<async_graphql::Response, Response> {
    if !may_introspect(ctx, &principal) {
        request = request.disable_introspection();
    }
    let (query, operation) = (request.query.clone(), request.operation_name.clone());
    let (request, dispatcher) = graphql::with_loaders(request, &ctx.db, principal);
    let execution = dispatcher.drive(ctx.schema.execute(request));
    let left = timeout.saturating_sub(started.elapsed());
    let Ok(mut response) = tokio::time::timeout(left, execution).await else {
        return Err(timed_out(timeout));
    };
    crate::response_order::in_selection_order(&query, operation.as_deref(), &mut response.data);
    // Errors from parsing and validating the query itself carry no code yet.
    for e in &mut response.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", code::VALIDATION);
        }
    }
    Ok(response)
}
