//! The `Idempotency-Key` header on requests that create things (GraphQL mutations, lead
//! capture): the first answer is kept for a day and given again to a retry with the same
//! key and the same request from the same caller, marked `Idempotent-Replayed: true`. The
//! same key with a different request is 422; a retry while the first still runs is 409.
//! A request that never ran (it did not parse or validate) gives its key back; one that
//! ran keeps its answer even when it failed (an earlier part may have committed), and
//! one that ran out of time answers its retries that its outcome is unknown.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rapport_engine::platform::idempotency::{self, Claim, Claimed, IdempotencyKey};

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

/// Who sent a request, as its idempotency keys are scoped.
pub fn caller_of(principal: &rapport_engine::platform::auth::Principal) -> String {
    match (principal.key_id, principal.user_id) {
        (Some(id), _) => format!("key:{id}"),
        (None, Some(id)) => format!("user:{id}"),
        (None, None) => "owner".into(),
    }
}

/// The 400 refusing a malformed key.
pub fn malformed(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code::VALIDATION, message)
}

/// What to do with a request that carries a key.
pub enum Begun {
    /// Run it, then [`finish`] with the claim.
    Run(Claim),
    /// Answer this instead of running it.
    Answer(Response),
}

/// Claims `caller`'s `key` in workspace `ws` for a request of `fingerprint`; `replay`
/// builds the answer a retry gets from the kept body.
pub async fn begin(
    ctx: &ApiContext,
    ws: i64,
    caller: &str,
    key: &IdempotencyKey,
    fingerprint: &str,
    replay: impl FnOnce(String) -> Response,
) -> Begun {
    match idempotency::claim(ctx.db(), ws, caller, key, fingerprint).await {
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

/// What a retry of a request that ran out of time is told.
const UNKNOWN_OUTCOME: &str = r#"{"data":null,"errors":[{"message":"the first request with this Idempotency-Key ran out of time, and may or may not have taken effect; check, then retry with a new key","extensions":{"code":"TIMEOUT"}}]}"#;

/// How a request with a claimed key ended.
pub enum Outcome<'a> {
    /// It answered `body`, kept for retries.
    Answered(&'a str),
    /// It changed nothing (refused before it wrote, or our side broke): the key goes
    /// back, and a retry runs it again.
    Released,
    /// It ran out of time and may have committed: retries are answered `TIMEOUT` for
    /// the rest of the retention, never run again.
    Unknown,
}

/// Records how the request holding `claim` ended.
pub async fn finish(ctx: &ApiContext, claim: Claim, outcome: Outcome<'_>) {
    let done = match outcome {
        Outcome::Answered(body) => idempotency::complete(ctx.db(), claim, body).await,
        Outcome::Released => idempotency::release(ctx.db(), claim).await,
        Outcome::Unknown => idempotency::complete(ctx.db(), claim, UNKNOWN_OUTCOME).await,
    };
    if let Err(e) = done {
        // The answer still goes out; a retry then finds the key in flight until it is
        // presumed abandoned.
        tracing::error!(error = ?e, "recording an idempotent answer failed");
    }
}
