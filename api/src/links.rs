//! The pages a contact reaches from an email, without logging in: one-click unsubscribe
//! (RFC 8058: a `POST` withdraws at once; a `GET` shows a page with one button) and double
//! opt-in confirmation. The signed token is the only credential.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rapport_engine::EngineError;
use rapport_engine::consent::{self, Proof};
use rapport_engine::links;
use serde::Deserialize;

use crate::server::ApiContext;

/// `?token=…`.
#[derive(Deserialize)]
pub struct TokenQuery {
    token: String,
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:\
         sans-serif;max-width:32rem;margin:4rem auto\"><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn refused(e: EngineError) -> Response {
    match e {
        EngineError::Validation { message, .. } => page(
            StatusCode::BAD_REQUEST,
            "This link does not work",
            &format!("<p>{message}.</p>"),
        ),
        EngineError::NotFound { .. } => page(
            StatusCode::NOT_FOUND,
            "Nothing to do",
            "<p>We hold no record for this link any more.</p>",
        ),
        e => {
            tracing::error!(error = ?e, "following a link failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<p>Please try again in a moment.</p>",
            )
        }
    }
}

fn proof(headers: &HeaderMap) -> Proof {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Proof {
        // Behind a proxy the client is the first X-Forwarded-For entry.
        ip: header("x-forwarded-for")
            .and_then(|v| v.split(',').next().map(|s| s.trim().to_string()))
            .or_else(|| header("x-real-ip")),
        user_agent: header(header::USER_AGENT.as_str()),
    }
}

/// `GET /unsubscribe?token=`: a page with one button (mail scanners follow GET links, so a
/// GET must not unsubscribe by itself).
pub async fn unsubscribe_page(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Err(e) = links::verify(ctx.db(), &q.token).await {
        return refused(e);
    }
    // verify() accepted it, so it holds only base64url characters and a dot.
    page(
        StatusCode::OK,
        "Unsubscribe",
        &format!(
            "<p>Stop receiving these emails?</p><form method=\"post\" \
             action=\"/unsubscribe?token={}\"><button type=\"submit\">Unsubscribe</button></form>",
            q.token
        ),
    )
}

/// `POST /unsubscribe?token=`: withdraws consent at once (RFC 8058 one-click).
pub async fn unsubscribe(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    match consent::follow(ctx.db(), &q.token, proof(&headers)).await {
        Ok(_) => page(
            StatusCode::OK,
            "You are unsubscribed",
            "<p>You will not receive these emails any more.</p>",
        ),
        Err(e) => refused(e),
    }
}

/// `GET /consent/confirm?token=`: grants the consent a double opt-in asked for.
pub async fn confirm(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    match links::verify(ctx.db(), &q.token).await {
        Ok(claim) if claim.action == links::Action::Confirm => {}
        Ok(_) => {
            return refused(EngineError::invalid(
                "token",
                "this is not a confirmation link",
            ));
        }
        Err(e) => return refused(e),
    }
    match consent::follow(ctx.db(), &q.token, proof(&headers)).await {
        Ok(_) => page(
            StatusCode::OK,
            "Thank you",
            "<p>Your subscription is confirmed.</p>",
        ),
        Err(e) => refused(e),
    }
}
