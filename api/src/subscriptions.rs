//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the older `graphql-ws`)
//! at `/graphql`.
//!
//! The caller is the one HTTP would see, by the same rules and the same request budget: a
//! bearer key on the upgrade request, or — as browsers cannot set headers on a socket —
//! in the `connection_init` payload (`{"authorization": "Bearer …"}`), or a console
//! session's cookie with its CSRF token in the payload (`{"csrfToken": …}`). A socket that
//! names no caller within [`INIT_TIMEOUT`] is closed. Only subscriptions run here: queries
//! and mutations go over HTTP, where idempotency keys and the audit log are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
use crate::http::{ApiContext, Caller, error_response};

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

/// How often an open socket's caller is checked again: a revoked key, an ended session
/// or a demoted user closes their sockets within this.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Sockets one key or session may hold open.
pub const MAX_SOCKETS: usize = 20;

/// Sockets one client address may hold open, named or not yet: what one machine may
/// keep of the server's memory before it names a caller.
pub const MAX_SOCKETS_PER_ADDRESS: usize = 200;

/// Sockets one process holds open at most, whoever holds them.
pub const MAX_OPEN_SOCKETS: usize = 10_000;

/// The open sockets: of each caller, of each client address, and in all.
#[derive(Default)]
pub struct Sockets {
    callers: Counter<Caller>,
    addresses: Counter<std::net::IpAddr>,
    total: AtomicUsize,
}

/// Open sockets counted by a key.
struct Counter<K>(Mutex<HashMap<K, usize>>);

impl<K> Default for Counter<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq> Counter<K> {
    /// Counts one more for `key` unless it holds `max` already.
    fn take(&self, key: K, max: usize) -> bool {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn give(&self, key: &K) {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                open.remove(key);
            }
        }
    }
}

/// A socket's place among its caller's; given back when dropped.
struct Slot(Arc<Sockets>, Caller);

/// A socket's place among its address's and the process's; given back when dropped.
struct Opening(Arc<Sockets>, Option<std::net::IpAddr>);

impl Sockets {
    fn take(self: &Arc<Self>, caller: Caller) -> Option<Slot> {
        self.callers
            .take(caller, MAX_SOCKETS)
            .then(|| Slot(self.clone(), caller))
    }

    /// A place for a new socket from `address`, before anyone is named.
    fn open(self: &Arc<Self>, address: Option<std::net::IpAddr>) -> Option<Opening> {
        if self.total.fetch_add(1, Ordering::SeqCst) >= MAX_OPEN_SOCKETS {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        if let Some(ip) = address
            && !self.addresses.take(ip, MAX_SOCKETS_PER_ADDRESS)
        {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Opening(self.clone(), address))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.callers.give(&self.1);
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if let Some(ip) = &self.1 {
            self.0.addresses.give(ip);
        }
        self.0.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who a socket runs as, how they proved it (to check again), and their socket's place.
struct Known {
    principal: Principal,
    headers: HeaderMap,
    _slot: Slot,
}

/// Upgrades `GET /graphql` to a subscription socket.
pub async fn upgrade(ctx: ApiContext, request: Request) -> HttpResponse {
    let address = crate::http::request_ip(&ctx, &request);
    let Some(opening) = ctx.sockets.open(address) else {
        return crate::http::too_many(
            Duration::from_secs(10),
            &format!("too many open sockets (at most {MAX_SOCKETS_PER_ADDRESS} from one address)"),
        );
    };
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
    let headers = only_credentials(&parts.headers);
    let caller: Arc<OnceLock<Known>> = Arc::new(OnceLock::new());
    // A key on the upgrade request is checked before the socket opens.
    if crate::http::bearer(&headers).is_some() {
        match identify(&ctx, headers.clone()).await {
            Ok(known) => {
                let _ = caller.set(known);
            }
            Err(refused) => return refused,
        }
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
            let _opening = opening;
            let init_caller = caller.clone();
            let init_ctx = ctx.clone();
            let serve = GraphQLWebSocket::new(stream, executor, protocol)
                .on_connection_init(move |payload| async move {
                    if init_caller.get().is_some() {
                        return Ok(Data::default());
                    }
                    let known = identify(&init_ctx, with_payload(headers, &payload))
                        .await
                        .map_err(|_| {
                            async_graphql::Error::new(
                                "not authenticated: send {\"authorization\": \"Bearer <api key>\"} \
                                 (or a console session's csrfToken) in connection_init",
                            )
                        })?;
                    let _ = init_caller.set(known);
                    Ok(Data::default())
                })
                .serve();
            tokio::pin!(serve);
            // A socket that never names its caller is dropped, which closes it.
            tokio::select! {
                _ = &mut serve => return,
                _ = tokio::time::sleep(INIT_TIMEOUT) => {}
            }
            let Some(known) = caller.get() else { return };
            let mut recheck =
                tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
            loop {
                tokio::select! {
                    _ = &mut serve => return,
                    _ = recheck.tick() => {
                        if crate::http::authenticate(&ctx, &known.headers).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
}

/// The headers of an upgrade request that may name its caller.
fn only_credentials(upgrade: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in [
        header::AUTHORIZATION,
        header::COOKIE,
        header::ORIGIN,
        header::USER_AGENT,
    ] {
        if let Some(v) = upgrade.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers
}

/// `headers` with the credentials a `connection_init` payload carries, as HTTP headers.
fn with_payload(mut headers: HeaderMap, payload: &serde_json::Value) -> HeaderMap {
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
    headers
}

/// The caller `headers` name, checked exactly as an HTTP request with them would be, and
/// a place among their sockets.
async fn identify(ctx: &ApiContext, headers: HeaderMap) -> Result<Known, HttpResponse> {
    let principal = crate::http::authenticate(ctx, &headers).await?;
    let Some(slot) =
        ctx.sockets
            .take((principal.workspace_id, principal.key_id, principal.user_id))
    else {
        return Err(crate::http::too_many(
            RECHECK,
            &format!("at most {MAX_SOCKETS} open sockets per API key or session"),
        ));
    };
    Ok(Known {
        principal,
        headers,
        _slot: slot,
    })
}

/// Runs a socket's subscriptions as its caller, with the request's batch loaders.
#[derive(Clone)]
struct SocketExecutor {
    ctx: ApiContext,
    caller: Arc<OnceLock<Known>>,
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
        let Some(who) = self.caller.get().map(|k| k.principal.clone()) else {
            return once(refusal(code::UNAUTHENTICATED, "not authenticated"));
        };
        if let Err(e) = crate::request_limits::check(&request) {
            return once(refusal(code::VALIDATION, &e.to_string()));
        }
        if self.ctx.documents.is_trusted_only() {
            let mut params = crate::graphql_http::Params {
                query: Some(request.query.clone()),
                ..Default::default()
            };
            if self.ctx.documents.resolve(&mut params).is_err() {
                return once(refusal(
                    code::FORBIDDEN,
                    "this server runs only its trusted documents",
                ));
            }
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
            .map(move |mut r| {
                let _ = &open;
                // Errors from parsing and validating the document carry no code yet.
                for e in &mut r.errors {
                    let ext = e.extensions.get_or_insert_with(Default::default);
                    if ext.get("code").is_none() {
                        ext.set("code", code::VALIDATION);
                    }
                }
                r
            })
            .boxed()
    }
}
