//! `POST /webhooks/bounce` (API key with write scope): bounce and complaint reports from
//! a mail provider, as JSON — `{"email": "...", "type": "hard|soft|complaint",
//! "status": "5.1.1", "diagnostic": "..."}` — or as a delivery status notification
//! (RFC 3464) — `{"dsn": "<the message/delivery-status part>"}`.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rapport_engine::engagement::bounces::{self, Kind, Report};
use rapport_engine::values::EmailAddress;
use rapport_engine::{EngineError, engagement::suppression};
use serde::Deserialize;
use serde_json::json;

use crate::error::code;
use crate::http::{ApiContext, authenticate_inbound, bounded_body, error_response};

/// The accepted body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BounceBody {
    email: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
    dsn: Option<String>,
}

/// The routes mail providers report to.
pub fn router() -> axum::Router<ApiContext> {
    axum::Router::new().route("/webhooks/bounce", axum::routing::post(bounce))
}

fn reports(body: BounceBody) -> Result<Vec<Report>, EngineError> {
    if let Some(dsn) = body.dsn {
        return bounces::parse_dsn(&dsn);
    }
    let email = body
        .email
        .ok_or_else(|| EngineError::invalid("email", "give `email` and `type`, or `dsn`"))?;
    Ok(vec![Report {
        email: EmailAddress::parse("email", &email)?,
        kind: Kind::parse(body.kind.as_deref().unwrap_or_default())?,
        status: body.status,
        diagnostic: body.diagnostic,
    }])
}

/// Records each report; answers with what happened to each address.
pub async fn bounce(State(ctx): State<ApiContext>, request: Request) -> Response {
    // The key first, from the headers: an unauthenticated caller's body is never read.
    let who = match authenticate_inbound(&ctx, request.headers()).await {
        Ok(p) => p,
        Err(response) => return response,
    };
    let request = match bounded_body(request, ctx.limits().json_body_bytes).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Ok(Json(body)) = Json::<BounceBody>::from_request(request, &()).await else {
        return error_response(
            StatusCode::BAD_REQUEST,
            code::VALIDATION,
            "the body must be JSON: {\"email\", \"type\": hard|soft|complaint} or {\"dsn\"}",
        );
    };
    let reports = match reports(body) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, code::VALIDATION, &e.to_string()),
    };
    let mut results = Vec::new();
    for report in reports {
        let hash = suppression::email_hash(&report.email);
        match bounces::record(ctx.db(), &who, report).await {
            Ok(o) => results.push(json!({
                "emailHash": hash,
                "suppressed": o.suppressed,
                "softBounces": o.soft_bounces,
            })),
            Err(EngineError::Forbidden(m)) => {
                return error_response(StatusCode::FORBIDDEN, code::FORBIDDEN, &m);
            }
            Err(e) => {
                tracing::error!(error = ?e, "recording a bounce failed");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code::INTERNAL,
                    "internal error",
                );
            }
        }
    }
    (StatusCode::OK, Json(json!({ "results": results }))).into_response()
}
