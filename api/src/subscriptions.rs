//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`)
//! at `/graphql`.
//!
//! The caller is the one HTTP would see, by the same rules and the same request budget: a
//! bearer key on the upgrade request, or — as browsers cannot set headers on a socket —
//! in the `connection_init` payload (`{"authorization": "Bearer …"}`), or a console
//! session's cookie with its CSRF token in the payload (`{"csrfToken": …}`). A socket that
//! names no caller within [`INIT_TIMEOUT`] is closed. Only subscriptions run here: queries
//! and mutations go over HTTP, where idempotency keys and the audit log are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ErrorExtensionValues, Executor, Response, ServerError};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{FromRequestParts, Request, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rapport_engine::platform::auth::Principal;

use crate::error::code;
use crate::http::{ApiContext, error_response};

/// How long a socket may stay open without naming its caller.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Subscriptions one socket may hold at once.
pub const MAX_PER_SOCKET: usize = 25;

/// Bytes of one message a client may send (a subscribe message is a document and its
/// variables).
const MAX_MESSAGE: usize = 64 * 1024;

/// Whether `headers` ask to upgrade to a WebSocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Upgrades `GET /graphql` to a subscription socket.
pub async fn upgrade(ctx: ApiContext, request: Request) -> HttpResponse {
    let (mut parts, _) = request.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                code::VALIDATION,
                "ask for the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol)",
            );
        }
    };
    let socket = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(s) => s,
        Err(rejection) => return rejection.into_response(),
    };
    let headers = parts.headers;
    // A key on the upgrade request is checked before the socket opens.
    let known = if crate::http::bearer(&headers).is_some() {
        match crate::http::authenticate(&ctx, &headers).await {
            Ok(p) => Some(p),
            Err(refused) => return refused,
        }
    } else {
        None
    };
    let caller: Arc<OnceLock<Principal>> = Arc::new(OnceLock::new());
    if let Some(p) = known {
        let _ = caller.set(p);
    }
    let executor = SocketExecutor {
        ctx: ctx.clone(),
        caller: caller.clone(),
        open: Arc::default(),
    };
    socket
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| async move {
            let init_caller = caller.clone();
            let serve = GraphQLWebSocket::new(stream, executor, protocol)
                .on_connection_init(move |payload| async move {
                    if init_caller.get().is_some() {
                        return Ok(Data::default());
                    }
                    match identify(&ctx, &headers, &payload).await {
                        Ok(p) => {
                            let _ = init_caller.set(p);
                            Ok(Data::default())
                        }
                        Err(message) => Err(async_graphql::Error::new(message)),
                    }
                })
                .serve();
            tokio::pin!(serve);
            // A socket that never names its caller is dropped, which closes it.
            tokio::select! {
                _ = &mut serve => {}
                _ = tokio::time::sleep(INIT_TIMEOUT) => {
                    if caller.get().is_some() {
                        serve.await;
                    }
                }
            }
        })
}

/// The caller a `connection_init` payload names, with the upgrade request's cookie and
/// origin: checked exactly as an HTTP request with those headers would be.
async fn identify(
    ctx: &ApiContext,
    upgrade: &HeaderMap,
    payload: &serde_json::Value,
) -> Result<Principal, String> {
    let mut headers = HeaderMap::new();
    for name in [header::COOKIE, header::ORIGIN, header::USER_AGENT] {
        if let Some(v) = upgrade.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    let field = |name: &str| {
        payload
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|v| v.len() <= 512)
            .and_then(|v| HeaderValue::from_str(v).ok())
    };
    if let Some(v) = field("authorization").or_else(|| field("Authorization")) {
        headers.insert(header::AUTHORIZATION, v);
    }
    if let Some(v) = field("csrfToken") {
        headers.insert("x-csrf-token", v);
    }
    crate::http::authenticate(ctx, &headers)
        .await
        .map_err(|_| "not authenticated: send {\"authorization\": \"Bearer <api key>\"} (or a console session's csrfToken) in connection_init".to_string())
}

/// Runs a socket's subscriptions as its caller, with the request's batch loaders.
#[derive(Clone)]
struct SocketExecutor {
    ctx: ApiContext,
    caller: Arc<OnceLock<Principal>>,
    /// Subscriptions open on this socket.
    open: Arc<AtomicUsize>,
}

fn refusal(code: &str, message: &str) -> Response {
    let mut e = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    e.extensions = Some(ext);
    Response::from_errors(vec![e])
}

/// Counts a subscription as open until its stream is dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor for SocketExecutor {
    async fn execute(&self, _request: async_graphql::Request) -> Response {
        refusal(
            code::VALIDATION,
            "only subscriptions run over the socket; send queries and mutations with POST",
        )
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        _session: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let once = |r: Response| futures_util::stream::once(async move { r }).boxed();
        let Some(who) = self.caller.get().cloned() else {
            return once(refusal(code::UNAUTHENTICATED, "not authenticated"));
        };
        if let Err(e) = crate::request_limits::check(&request) {
            return once(refusal(code::VALIDATION, &e.to_string()));
        }
        let kind =
            crate::graphql_http::operation(&request.query, request.operation_name.as_deref())
                .map(|(kind, _)| kind);
        if kind != Some(OperationType::Subscription) {
            return once(refusal(
                code::VALIDATION,
                "only subscriptions run over the socket; send queries and mutations with POST",
            ));
        }
        if let Err(wait) = self
            .ctx
            .requests
            .take((who.workspace_id, who.key_id, who.user_id), 1.0)
        {
            return once(refusal(
                code::RATE_LIMITED,
                &format!(
                    "too many requests with this API key or session; retry in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        if self.open.fetch_add(1, Ordering::SeqCst) >= MAX_PER_SOCKET {
            self.open.fetch_sub(1, Ordering::SeqCst);
            return once(refusal(
                code::VALIDATION,
                &format!("at most {MAX_PER_SOCKET} subscriptions per socket"),
            ));
        }
        let open = Open(self.open.clone());
        let (request, dispatcher) = crate::graphql::with_loaders(request, &self.ctx.db, who);
        let stream = self.ctx.schema.execute_stream(request);
        dispatcher
            .drive_stream(stream)
            .map(move |r| {
                let _ = &open;
                r
            })
            .boxed()
    }
}
