//! The HTTP server: GraphQL (with GraphiQL), health, authentication.

use crate::error::code;
use crate::graphql::{self, RapportSchema};
use crate::keys::VerifiedKeys;
use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::DatabaseConnection;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

/// What every handler shares: the database, the schema and the verified keys.
#[derive(Clone)]
pub struct ApiContext {
    db: DatabaseConnection,
    schema: RapportSchema,
    keys: Arc<VerifiedKeys>,
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
}

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
    /// The time drip sequences run on (enrollments made over the API start then).
    pub clock: Arc<dyn rapport_engine::clock::Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key_ttl: DEFAULT_KEY_TTL,
            public_url: DEFAULT_PUBLIC_URL.into(),
            mail: None,
            plugin_cache: None,
            clock: rapport_engine::clock::system(),
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
    let plugins = match graphql::plugin_host(&db, keys.clone(), public.clone(), config.plugin_cache)
    {
        Ok(host) => Some(host),
        Err(e) => {
            tracing::error!(error = %e, "serving without plugins");
            None
        }
    };
    let ctx = ApiContext {
        schema: graphql::build(
            db.clone(),
            keys.clone(),
            public,
            config.mail,
            plugins,
            config.clock,
        ),
        db,
        keys,
    };
    Router::new()
        .route("/graphql", get(graphiql).post(graphql_handler))
        .route("/healthz", get(healthz))
        .route(
            "/unsubscribe",
            get(crate::links::unsubscribe_page).post(crate::links::unsubscribe),
        )
        .route("/consent/confirm", get(crate::links::confirm))
        .route("/t/o/{token}", get(crate::links::open_pixel))
        .route("/t/c/{token}", get(crate::links::click))
        .route(
            "/webhooks/bounce",
            axum::routing::post(crate::webhooks::bounce),
        )
        .layer(TraceLayer::new_for_http())
        .with_state(ctx)
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
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

/// A JSON error in the GraphQL errors shape, for requests that never reach GraphQL.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"data": null, "errors": [{"message": message, "extensions": {"code": code}}]})),
    )
        .into_response()
}

/// The caller of a request with an API key, or the response refusing it.
pub async fn authenticate(
    ctx: &ApiContext,
    headers: &HeaderMap,
) -> Result<rapport_engine::auth::Principal, Response> {
    let Some(key) = bearer(headers) else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "missing 'Authorization: Bearer <api key>' header",
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[tracing::instrument(name = "graphql", skip_all, fields(workspace = tracing::field::Empty))]
async fn graphql_handler(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let principal = match authenticate(&ctx, &headers).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    tracing::Span::current().record("workspace", principal.workspace_id);
    let (request, dispatcher) = graphql::with_loaders(request.into_inner(), &ctx.db, principal);
    let mut response = dispatcher.drive(ctx.schema.execute(request)).await;
    // Errors from parsing and validating the query itself carry no code yet.
    for e in &mut response.errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", code::VALIDATION);
        }
    }
    GraphQLResponse::from(response).into_response()
}
