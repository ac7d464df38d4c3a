//! The `Idempotency-Key` header on requests that create things (GraphQL mutations, lead
//! capture): the first answer is kept for a day and given again to a retry with the same
//! key and the same request, marked `Idempotent-Replayed: true`. The same key with a
//! different request is 422; a retry while the first still runs is 409. A request that
//! failed on our side gives its key back, so a retry runs it again.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rapport_engine::platform::idempotency::{self, Claimed, IdempotencyKey};

use crate::error::code;
use crate::http::{ApiContext, error_response};

/// The header's name.
pub const HEADER: &str = "idempotency-key";

/// The request's idempotency key: none, or one that parsed; a malformed one is refused
/// with [`malformed`].
pub fn from_headers(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, String> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(None);
    };
    raw.to_str()
        .map_err(|_| "the Idempotency-Key header must be visible ASCII".to_string())
        .and_then(|s| IdempotencyKey::parse("Idempotency-Key", s).map_err(|e| e.to_string()))
        .map(Some)
}

/// The 400 refusing a malformed key.
pub fn malformed(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code::VALIDATION, message)
}

/// What to do with a request that carries a key.
pub enum Begun {
    /// Run it, then [`finish`] with the claimed row.
    Run(i64),
    /// Answer this instead of running it.
    Answer(Response),
}

/// Claims `key` in workspace `ws` for a request of `fingerprint`; `replay` builds the
/// answer a retry gets from the kept body.
pub async fn begin(
    ctx: &ApiContext,
    ws: i64,
    key: &IdempotencyKey,
    fingerprint: &str,
    replay: impl FnOnce(String) -> Response,
) -> Begun {
    match idempotency::claim(ctx.db(), ws, key, fingerprint).await {
        Ok(Claimed::Fresh(row)) => Begun::Run(row),
        Ok(Claimed::Replay(body)) => {
            let mut answer = replay(body);
            answer
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Begun::Answer(answer)
        }
        Ok(Claimed::InFlight) => Begun::Answer(error_response(
            StatusCode::CONFLICT,
            code::CONFLICT,
            "a request with this Idempotency-Key is still running; retry in a moment",
        )),
        Ok(Claimed::Mismatch) => Begun::Answer(error_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::VALIDATION,
            "this Idempotency-Key was used for a different request; use a new key",
        )),
        Err(e) => {
            tracing::error!(error = ?e, "claiming an idempotency key failed");
            Begun::Answer(
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code::INTERNAL,
                    "internal error",
                )
                .into_response(),
            )
        }
    }
}

/// Keeps `body`, the answer of the request that claimed `row`; when it `failed_here`
/// (our side broke), gives the key back instead.
pub async fn finish(ctx: &ApiContext, row: i64, body: &str, failed_here: bool) {
    let done = if failed_here {
        idempotency::release(ctx.db(), row).await
    } else {
        idempotency::complete(ctx.db(), row, body).await
    };
    if let Err(e) = done {
        // The answer still goes out; a retry then finds the key in flight until it is
        // presumed abandoned.
        tracing::error!(error = ?e, "recording an idempotent answer failed");
    }
}
