//! Cross-origin requests from browsers (CORS): the API answers pages of the origins it
//! is configured with (`--cors-origins`), and the lead-capture routes answer the origins
//! their ingest keys name. A preflight from any other origin is refused, and an answer
//! to it carries no `Access-Control-Allow-Origin`; the server checks the origin again on
//! the request itself, because CORS only stops a browser from reading an answer, not a
//! request from running.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rapport_engine::engagement::capture::keys::WebOrigin;

/// Request headers a cross-origin page may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, accept, idempotency-key";
/// Response headers a cross-origin page may read.
const EXPOSED_HEADERS: &str = "retry-after, idempotent-replayed";
/// How long a browser may remember a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// The request's `Origin`, when it is a web origin (absent or `null` otherwise).
pub fn origin(headers: &HeaderMap) -> Option<WebOrigin> {
    let raw = headers.get(header::ORIGIN)?.to_str().ok()?;
    WebOrigin::parse("Origin", raw).ok()
}

/// The answer to a preflight: allowed for `origin` with `methods`, or refused.
pub fn preflight(origin: Option<&WebOrigin>, allowed: bool, methods: &'static str) -> Response {
    let Some(origin) = origin.filter(|_| allowed) else {
        let mut refused = StatusCode::FORBIDDEN.into_response();
        refused
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
        return refused;
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    allow_origin(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    response
}

/// Lets `origin` read `response`.
pub fn allow(mut response: Response, origin: &WebOrigin) -> Response {
    allow_origin(response.headers_mut(), origin);
    response.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    response
}

fn allow_origin(h: &mut HeaderMap, origin: &WebOrigin) {
    if let Ok(value) = HeaderValue::from_str(origin.as_str()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    // The answer differs by origin: caches must keep them apart.
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The API's own CORS: `OPTIONS /graphql` answers the configured origins.
pub async fn graphql_preflight(
    axum::extract::State(ctx): axum::extract::State<crate::http::ApiContext>,
    headers: HeaderMap,
) -> Response {
    let origin = origin(&headers);
    let allowed = origin
        .as_ref()
        .is_some_and(|o| ctx.cors_origins.contains(o));
    preflight(origin.as_ref(), allowed, "GET, POST")
}

/// Adds `Access-Control-Allow-Origin` to `/graphql`'s answers for a configured origin.
pub async fn graphql_answers(
    axum::extract::State(ctx): axum::extract::State<crate::http::ApiContext>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = origin(request.headers()).filter(|o| ctx.cors_origins.contains(o));
    let mut response = next.run(request).await;
    match origin {
        Some(o) => allow(response, &o),
        None => {
            if !ctx.cors_origins.is_empty() {
                // Whether an answer allows an origin depends on the origin asking.
                response
                    .headers_mut()
                    .append(header::VARY, HeaderValue::from_static("Origin"));
            }
            response
        }
    }
}
