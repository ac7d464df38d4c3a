//! The pages a contact reaches from an email, without logging in: one-click unsubscribe
//! (RFC 8058: a `POST` withdraws at once; a `GET` shows a page with one button) and double
//! opt-in confirmation (the same: mail scanners fetch every link in a message, so a `GET`
//! only shows the button and the `POST` it sends confirms), and the preference page
//! (email topics, or unsubscribe from all). The signed token is the only credential, and
//! each route accepts only its own kind of token.

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rapport_engine::EngineError;
use rapport_engine::engagement::consent::{self, Proof};
use rapport_engine::platform::links;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

use crate::http::ApiContext;

/// `?token=…`.
#[derive(Deserialize)]
pub struct TokenQuery {
    token: String,
}

/// The pages hold inline styles and a form posting back here; nothing else may load.
const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// The routes of the pages a contact reaches from an email: each kind of token on its own.
pub fn router() -> axum::Router<ApiContext> {
    use axum::routing::get;
    axum::Router::new()
        .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
        .route("/consent/confirm", get(confirm_page).post(confirm))
        .route("/preferences", get(preferences_page).post(save_preferences))
        .route("/t/o/{token}", get(open_pixel))
        .route("/t/c/{token}", get(click))
}

/// The look every public page shares: one card on a quiet background, legible on a
/// phone, styled inline (the CSP allows nothing else).
const PAGE_STYLE: &str = "body{margin:0;background:#f4f5f7;color:#1f2933;\
    font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
    main{max-width:30rem;margin:4rem auto;background:#fff;border-radius:12px;\
    padding:2rem 2.25rem;box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}\
    h1{font-size:1.5rem;margin:0 0 1rem}p{margin:.5rem 0 1rem}\
    label{display:block;font-weight:600;font-size:.9rem;margin:1rem 0 .3rem}\
    input[type=text],input[type=email],input[type=tel]{width:100%;box-sizing:border-box;\
    padding:.6rem .75rem;border:1px solid #cbd2d9;border-radius:8px;font:inherit}\
    input:focus{outline:2px solid #3b63d9;outline-offset:1px;border-color:#3b63d9}\
    button{margin-top:1.5rem;background:#3b63d9;color:#fff;border:0;border-radius:8px;\
    padding:.7rem 1.4rem;font:inherit;font-weight:600;cursor:pointer}\
    button:hover{background:#2f50b3}.error{color:#b42318;background:#fef3f2;\
    border:1px solid #fecdca;border-radius:8px;padding:.6rem .8rem}\
    .trap{position:absolute;left:-10000px}.fine{color:#616e7c;font-size:.85rem}";

/// A public page: `title` and `body` (HTML the caller escaped).
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>{title}</title>\
         <style>{PAGE_STYLE}</style></head><body><main><h1>{title}</h1>{body}</main></body></html>"
    );
    (
        status,
        [(header::CONTENT_SECURITY_POLICY, PAGE_CSP)],
        Html(html),
    )
        .into_response()
}

/// A page with one button that posts the token back to `path`.
fn button_page(path: &str, title: &str, question: &str, button: &str, token: &str) -> Response {
    // verify() accepted the token, so it holds only base64url characters and a dot.
    page(
        StatusCode::OK,
        title,
        &format!(
            "<p>{question}</p><form method=\"post\" action=\"{path}?token={token}\">\
             <button type=\"submit\">{button}</button></form>"
        ),
    )
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

/// Where a request came from: the peer's address, or — when the peer is one of the
/// configured proxies — the nearest address in `X-Forwarded-For` that is not a proxy.
/// Anyone can write that header, so it is believed only from a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted_proxies.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|s| s.trim().parse::<IpAddr>().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted_proxies.contains(ip))
            .unwrap_or(peer),
    )
}

pub(crate) fn proof(ctx: &ApiContext, extensions: &Extensions, headers: &HeaderMap) -> Proof {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    Proof {
        ip: client_ip(peer, headers, ctx.trusted_proxies()).map(|ip| ip.to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    }
}

/// `GET /unsubscribe?token=`: a page with one button (mail scanners follow GET links, so a
/// GET must not unsubscribe by itself).
pub async fn unsubscribe_page(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Err(e) = links::verify(ctx.db(), &q.token, links::Action::Unsubscribe).await {
        return refused(e);
    }
    button_page(
        "/unsubscribe",
        "Unsubscribe",
        "Stop receiving these emails?",
        "Unsubscribe",
        q.token.trim(),
    )
}

/// `POST /unsubscribe?token=`: withdraws consent at once (RFC 8058 one-click).
pub async fn unsubscribe(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    match consent::follow(
        ctx.db(),
        &q.token,
        links::Action::Unsubscribe,
        proof(&ctx, &extensions, &headers),
    )
    .await
    {
        Ok((claim, _)) => {
            if let Err(e) = rapport_engine::engagement::note_unsubscribe(ctx.db(), &claim).await {
                // The withdrawal is recorded; only the message's statistic and event are missing.
                tracing::error!(error = ?e, "noting an unsubscribe on its message");
            }
            page(
                StatusCode::OK,
                "You are unsubscribed",
                "<p>You will not receive these emails any more.</p>",
            )
        }
        Err(e) => refused(e),
    }
}

/// `GET /consent/confirm?token=`: a page with one button that confirms.
pub async fn confirm_page(State(ctx): State<ApiContext>, Query(q): Query<TokenQuery>) -> Response {
    if let Err(e) = links::verify(ctx.db(), &q.token, links::Action::Confirm).await {
        return refused(e);
    }
    button_page(
        "/consent/confirm",
        "Confirm your subscription",
        "Do you want to receive these emails?",
        "Yes, subscribe me",
        q.token.trim(),
    )
}

/// `POST /consent/confirm?token=`: grants the consent a double opt-in asked for, once,
/// if nothing was decided since the request.
pub async fn confirm(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    let proof = proof(&ctx, &extensions, &headers);
    match consent::follow(ctx.db(), &q.token, links::Action::Confirm, proof).await {
        Ok(_) => page(
            StatusCode::OK,
            "Thank you",
            "<p>Your subscription is confirmed.</p>",
        ),
        Err(e) => refused(e),
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `GET /preferences?token=`: the person's topics, ticked as they stand, and a way out of
/// all marketing email.
pub async fn preferences_page(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let (name, topics) = match rapport_engine::engagement::topics::page(ctx.db(), &q.token).await {
        Ok(found) => found,
        Err(e) => return refused(e),
    };
    let mut rows = String::new();
    for (t, on) in &topics {
        rows.push_str(&format!(
            "<p><label><input type=\"checkbox\" name=\"topic_{}\"{}> <strong>{}</strong></label>{}</p>",
            t.id,
            if *on { " checked" } else { "" },
            escape(&t.name),
            t.description
                .as_deref()
                .map(|d| format!("<br><small>{}</small>", escape(d)))
                .unwrap_or_default()
        ));
    }
    if topics.is_empty() {
        rows.push_str("<p>There are no topics to choose from.</p>");
    }
    let greeting = if name.trim().is_empty() {
        "Choose the emails you want.".to_string()
    } else {
        format!("{}, choose the emails you want.", escape(name.trim()))
    };
    // verify() accepted the token, so it holds only base64url characters and a dot.
    page(
        StatusCode::OK,
        "Your email preferences",
        &format!(
            "<p>{greeting}</p><form method=\"post\" action=\"/preferences?token={token}\">{rows}\
             <hr><p><label><input type=\"checkbox\" name=\"all\"> Unsubscribe from all \
             marketing email</label></p><button type=\"submit\">Save</button></form>",
            token = q.token.trim()
        ),
    )
}

/// The most a preference form may send: a few bytes per topic.
const PREFERENCES_FORM_BYTES: usize = 16 * 1024;

/// `POST /preferences?token=`: saves the ticked topics (the others are opt-outs) and,
/// when asked, withdraws marketing consent. The token is checked before the form is read.
pub async fn save_preferences(
    State(ctx): State<ApiContext>,
    Query(q): Query<TokenQuery>,
    extensions: Extensions,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Err(e) = links::verify(ctx.db(), &q.token, links::Action::Preferences).await {
        return refused(e);
    }
    let Ok(bytes) = axum::body::to_bytes(body, PREFERENCES_FORM_BYTES).await else {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "This form is too large",
            "<p>Please try again from the page.</p>",
        );
    };
    let mut chosen = std::collections::HashSet::new();
    let mut all = false;
    for (name, _) in form_urlencoded::parse(&bytes) {
        if name == "all" {
            all = true;
        } else if let Some(id) = name
            .strip_prefix("topic_")
            .and_then(|i| i.parse::<i64>().ok())
        {
            chosen.insert(id);
        }
    }
    let proof = proof(&ctx, &extensions, &headers);
    match rapport_engine::engagement::topics::save_page(ctx.db(), &q.token, &chosen, all, proof)
        .await
    {
        Ok(()) if all => page(
            StatusCode::OK,
            "You are unsubscribed",
            "<p>You will not receive marketing email any more.</p>",
        ),
        Ok(()) => page(
            StatusCode::OK,
            "Your preferences are saved",
            "<p>You will receive the emails you ticked.</p>",
        ),
        Err(e) => refused(e),
    }
}

/// The 1×1 transparent GIF of the open pixel.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

async fn tracked(
    ctx: &ApiContext,
    token: &str,
    action: links::Action,
) -> Result<Option<String>, Response> {
    let claim = links::verify(ctx.db(), token, action)
        .await
        .map_err(refused)?;
    rapport_engine::engagement::track(ctx.db(), &claim)
        .await
        .map_err(refused)
}

/// `GET /t/o/{token}`: the open pixel of a campaign email.
pub async fn open_pixel(State(ctx): State<ApiContext>, Path(token): Path<String>) -> Response {
    match tracked(&ctx, &token, links::Action::Open).await {
        Ok(_) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "image/gif"),
                (header::CACHE_CONTROL, "no-store, max-age=0"),
            ],
            PIXEL,
        )
            .into_response(),
        Err(response) => response,
    }
}

/// `GET /t/c/{token}`: a click in a campaign email, redirected to the signed
/// destination. An unsigned or altered link is refused: this is no open redirect.
pub async fn click(State(ctx): State<ApiContext>, Path(token): Path<String>) -> Response {
    match tracked(&ctx, &token, links::Action::Click).await {
        Ok(Some(url)) => (StatusCode::FOUND, [(header::LOCATION, url)]).into_response(),
        Ok(None) => refused(EngineError::invalid("token", "the link has no destination")),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        // A client writing the header itself is not believed.
        assert_eq!(
            client_ip(Some(ip("198.51.100.7")), &headers, &[]),
            Some(ip("198.51.100.7"))
        );
        // Through our proxy, the address the proxy saw is the client; what the client
        // wrote before it is not.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), &headers, &[ip("10.0.0.2")]),
            Some(ip("203.0.113.9"))
        );
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.3".parse().unwrap());
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                &headers,
                &[ip("10.0.0.2"), ip("10.0.0.3")]
            ),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(client_ip(None, &headers, &[]), None);
    }
}
