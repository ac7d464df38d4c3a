//! Request ids: every request gets one (the client's `X-Request-Id` when it is a short
//! token, else a new random one), carried by a span so every log line the request causes
//! names it, returned in the `X-Request-Id` header, and put in the `extensions` of error
//! answers, so a person who reports an error gives the operator the id to find its logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// The header that carries the id both ways.
pub const HEADER: &str = "x-request-id";

/// Characters of a client's id taken; anything longer, or with other than letters,
/// digits, `-`, `_` and `.`, is replaced with a new one.
const MAX_LEN: usize = 64;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request this task works for, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(String::clone).ok()
}

/// Adds the current request id to an error's JSON `extensions`.
pub fn stamp(extensions: &mut serde_json::Value) {
    if let Some(id) = current() {
        extensions["requestId"] = id.into();
    }
}

fn accepted(given: &str) -> bool {
    !given.is_empty()
        && given.len() <= MAX_LEN
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The middleware: names the request, runs it inside its span and task-local id, and
/// answers with the id in the header.
pub async fn assign(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| accepted(v))
        .map(str::to_string)
        .unwrap_or_else(|| rapport_engine::platform::auth::random_hex(8));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = CURRENT
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_clients() {
        assert!(accepted("3f2a-9c.1_b"));
        assert!(!accepted(""));
        assert!(!accepted("a b"));
        assert!(!accepted("line\nbreak"));
        assert!(!accepted(&"x".repeat(65)));
    }
}
