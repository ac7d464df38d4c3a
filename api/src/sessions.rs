//! Console sign-in over HTTP: `/auth/sign-in`, `/auth/session`, `/auth/sign-out`,
//! `/auth/sign-out-everywhere`, `/auth/set-password`, `/auth/forgot-password`; and the
//! check of a session cookie on `/graphql` ([`principal_of_session`]).
//!
//! - The session token lives only in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` when
//!   the public URL is https). Every request that uses it must also carry the CSRF token
//!   in `X-CSRF-Token`: another site's page can make the browser send the cookie, but
//!   cannot read the token ([`accounts::csrf_token`]).
//! - The POST routes take only `application/json` (a cross-site HTML form cannot send it)
//!   and refuse an `Origin` other than this server's. The caller's address is checked
//!   against its budget before its body is read; the body is capped at
//!   [`AUTH_BODY_BYTES`].
//! - A refusal never says whether the email is known; a lock-out says until when.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rapport_engine::platform::accounts::{self, Attempt, LinkPurpose, Password, Refusal};
use rapport_engine::platform::auth::Principal;
use rapport_engine::platform::email::{self, Outgoing};
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::code;
use crate::http::{ApiContext, bounded_body, error_response, is_json};

/// The session cookie's name.
pub const COOKIE: &str = "rapport_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Bytes of a sign-in, password or reset request.
pub const AUTH_BODY_BYTES: usize = 4 * 1024;

/// How sessions behave.
#[derive(Clone, Copy, Debug)]
pub struct SessionSettings {
    /// How long a session lasts after sign-in.
    pub ttl: Duration,
    /// Sign-in, password and reset requests one address may make per minute.
    pub per_ip_per_minute: u32,
}

/// The defaults, which the command line's flags also start from.
pub const DEFAULT_SESSION_SETTINGS: SessionSettings = SessionSettings {
    ttl: Duration::from_secs(12 * 3600),
    per_ip_per_minute: 20,
};

/// Failures in a row, and the lock they earned, of one email without an account.
type UnknownEmail = (i32, Option<chrono::DateTime<chrono::Utc>>);

/// This process's sign-in budgets.
pub struct Budgets {
    per_ip: crate::rate_limit::Buckets<IpAddr>,
    /// Failures per email that has no account, locked like a real account's, so a lock-out
    /// says nothing about whether the account exists. In memory, rather than rows written
    /// for any address a stranger types.
    unknown: std::sync::Mutex<std::collections::HashMap<String, UnknownEmail>>,
}

/// Beyond this many unknown addresses the count starts over rather than grow without bound.
const MAX_UNKNOWN: usize = 50_000;

impl Budgets {
    /// Budgets of `settings`.
    pub fn new(settings: SessionSettings) -> Self {
        Self {
            per_ip: crate::rate_limit::Buckets::per_minute(settings.per_ip_per_minute),
            unknown: std::sync::Mutex::default(),
        }
    }

    /// Whether an email without an account is "locked" now, as a real one would be.
    fn unknown_locked(&self, email: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let map = self.unknown.lock().expect("unknown emails");
        map.get(&email.trim().to_lowercase())
            .and_then(|(_, until)| *until)
            .filter(|t| *t > rapport_engine::clock::now())
    }

    /// Counts a failure for an email without an account; the lock it is now under, if any.
    fn unknown_failed(&self, email: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let mut map = self.unknown.lock().expect("unknown emails");
        if map.len() >= MAX_UNKNOWN {
            map.clear();
        }
        let entry = map.entry(email.trim().to_lowercase()).or_insert((0, None));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = accounts::lock_for(entry.0).map(|d| rapport_engine::clock::now() + d);
        entry.1
    }
}

/// The sign-in routes.
pub fn router() -> axum::Router<ApiContext> {
    axum::Router::new()
        .route("/auth/session", get(current))
        .route("/auth/sign-in", post(sign_in))
        .route("/auth/sign-out", post(sign_out))
        .route("/auth/sign-out-everywhere", post(sign_out_everywhere))
        .route("/auth/set-password", post(set_password))
        .route("/auth/forgot-password", post(forgot_password))
}

/// The session token in a request's cookies.
pub fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The caller of a `/graphql` request that carries a session cookie: the session must be
/// live and the CSRF header must belong to it.
pub async fn principal_of_session(
    ctx: &ApiContext,
    headers: &HeaderMap,
    token: &str,
) -> Result<Principal, Response> {
    let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let Some(csrf) = csrf.filter(|c| accounts::csrf_matches(token, c)) else {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "a request with a session cookie must carry its X-CSRF-Token header",
        ));
    };
    let _ = csrf;
    match accounts::session(ctx.db(), token).await {
        Ok(Some(live)) => Ok(accounts::principal_of(&live.user)),
        Ok(None) => Err(signed_out()),
        Err(e) => Err(internal(&e)),
    }
}

fn signed_out() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        code::UNAUTHENTICATED,
        "the session has ended; sign in again",
    )
}

fn internal(e: &rapport_engine::EngineError) -> Response {
    tracing::error!(error = %rapport_engine::error::chain(e), "a session request failed");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        code::INTERNAL,
        "internal error",
    )
}

use crate::http::too_many as rate_limited;

/// Whether a request's `Origin`, when it has one, is this server: the public URL's
/// origin, or the origin the browser addressed (`Host`).
fn same_origin(ctx: &ApiContext, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let public = ctx.public_url.as_ref();
    let public_origin = public
        .find("://")
        .map(|i| match public[i + 3..].find('/') {
            Some(j) => &public[..i + 3 + j],
            None => public,
        })
        .unwrap_or(public);
    if origin.eq_ignore_ascii_case(public_origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    host.is_some_and(|h| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(h))
    })
}

/// The checks every POST shares, in order: the address's budget, the origin, the media
/// type, then the body up to [`AUTH_BODY_BYTES`], parsed as `T`.
async fn read<T: for<'de> Deserialize<'de>>(
    ctx: &ApiContext,
    request: Request,
) -> Result<(T, Option<IpAddr>, HeaderMap), Response> {
    let ip = crate::http::request_ip(ctx, &request);
    let key = crate::rate_limit::address_key(ip);
    if let Err(wait) = ctx.sessions.per_ip.take(key, 1.0) {
        // Logged, not stored: a row per refused request would let one address fill a table.
        tracing::warn!(ip = ?ip, "sign-in requests over the address's budget");
        return Err(rate_limited(
            wait,
            "too many sign-in requests from this address; retry later",
        ));
    }
    if !same_origin(ctx, request.headers()) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "this request came from another site",
        ));
    }
    if !is_json(request.headers()) {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::VALIDATION,
            "send the request as Content-Type: application/json",
        ));
    }
    let headers = request.headers().clone();
    let request = bounded_body(request, AUTH_BODY_BYTES).await?;
    let body = axum::body::to_bytes(request.into_body(), AUTH_BODY_BYTES)
        .await
        .map_err(|_| {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                code::VALIDATION,
                "the request body is too large",
            )
        })?;
    let parsed = serde_json::from_slice(&body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            code::VALIDATION,
            &format!("the body is not the JSON this route takes: {e}"),
        )
    })?;
    Ok((parsed, ip, headers))
}

fn cookie(ctx: &ApiContext, value: &str, max_age: i64) -> HeaderValue {
    let secure = if ctx.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("rapport_session=; Max-Age=0"))
}

fn person(u: &rapport_schema::user::Model) -> serde_json::Value {
    json!({"id": u.id.to_string(), "name": u.name, "email": u.email, "role": u.role.to_uppercase()})
}

/// The answer to a session opened: the person and the CSRF token, the cookie set.
fn opened(ctx: &ApiContext, opened: accounts::OpenedSession) -> Response {
    let max_age = (opened.session.expires_at - opened.session.created_at).num_seconds();
    let mut response = Json(json!({
        "user": person(&opened.user),
        "csrfToken": opened.csrf,
        "expiresAt": opened.session.expires_at,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(ctx, &opened.token, max_age));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    email: String,
    password: String,
}

/// `POST /auth/sign-in`.
#[tracing::instrument(name = "sign_in", skip_all)]
async fn sign_in(State(ctx): State<ApiContext>, request: Request) -> Response {
    let (body, ip, headers) = match read::<SignIn>(&ctx, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let ip = ip.map(|i| i.to_string());
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let attempt = Attempt {
        email: &body.email,
        password: &body.password,
        ip: ip.as_deref(),
        user_agent,
        ttl: chrono::Duration::from_std(ctx.session_settings.ttl)
            .unwrap_or(chrono::Duration::hours(12)),
    };
    if let Some(until) = ctx.sessions.unknown_locked(&body.email) {
        return locked(until);
    }
    match accounts::sign_in(ctx.db(), attempt).await {
        Ok(Ok(session)) => opened(&ctx, session),
        Ok(Err(Refusal::WrongCredentials)) => wrong(),
        Ok(Err(Refusal::UnknownEmail)) => match ctx.sessions.unknown_failed(&body.email) {
            Some(until) => locked(until),
            None => wrong(),
        },
        Ok(Err(Refusal::Locked(until))) => locked(until),
        Err(e) => internal(&e),
    }
}

fn wrong() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        code::UNAUTHENTICATED,
        "the email or the password is wrong",
    )
}

fn locked(until: chrono::DateTime<chrono::Utc>) -> Response {
    let wait = (until - rapport_engine::clock::now())
        .to_std()
        .unwrap_or(Duration::from_secs(1));
    rate_limited(
        wait,
        &format!(
            "too many failed sign-ins: this account is locked for {} s",
            wait.as_secs().max(1)
        ),
    )
}

/// `GET /auth/session`: the person signed in and the CSRF token, for a page that was
/// reloaded. Reads only.
async fn current(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    let Some(token) = session_token(&headers) else {
        return signed_out();
    };
    match accounts::session(ctx.db(), token).await {
        Ok(Some(live)) => {
            let workspace =
                rapport_engine::crm::workspaces::name_of(ctx.db(), live.user.workspace_id)
                    .await
                    .unwrap_or_default();
            let mut response = Json(json!({
                "user": person(&live.user),
                "csrfToken": accounts::csrf_token(token),
                "expiresAt": live.session.expires_at,
                "workspaceName": workspace,
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(None) => signed_out(),
        Err(e) => internal(&e),
    }
}

/// The session of a sign-out request, which must carry its CSRF token like any other
/// change.
async fn session_of_change(
    ctx: &ApiContext,
    headers: &HeaderMap,
) -> Result<(String, accounts::LiveSession), Response> {
    if !same_origin(ctx, headers) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "this request came from another site",
        ));
    }
    let Some(token) = session_token(headers) else {
        return Err(signed_out());
    };
    let csrf = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !csrf.is_some_and(|c| accounts::csrf_matches(token, c)) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "a request with a session cookie must carry its X-CSRF-Token header",
        ));
    }
    match accounts::session(ctx.db(), token).await {
        Ok(Some(live)) => Ok((token.to_string(), live)),
        Ok(None) => Err(signed_out()),
        Err(e) => Err(internal(&e)),
    }
}

fn cleared(ctx: &ApiContext, body: serde_json::Value) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(ctx, "", 0));
    response
}

/// `POST /auth/sign-out`: ends this session.
async fn sign_out(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    let (token, _) = match session_of_change(&ctx, &headers).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    match accounts::sign_out(ctx.db(), &token).await {
        Ok(()) => cleared(&ctx, json!({"signedOut": 1})),
        Err(e) => internal(&e),
    }
}

/// `POST /auth/sign-out-everywhere`: ends every session of the person.
async fn sign_out_everywhere(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    let (_, live) = match session_of_change(&ctx, &headers).await {
        Ok(s) => s,
        Err(refused) => return refused,
    };
    match accounts::sign_out_everywhere(ctx.db(), live.user.id).await {
        Ok(n) => cleared(&ctx, json!({"signedOut": n})),
        Err(e) => internal(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    token: String,
    password: String,
}

/// `POST /auth/set-password`: spends a one-time link, sets the password, ends the
/// person's other sessions and opens a new one.
#[tracing::instrument(name = "set_password", skip_all)]
async fn set_password(State(ctx): State<ApiContext>, request: Request) -> Response {
    let (body, ip, headers) = match read::<SetPassword>(&ctx, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let password = match Password::parse("password", &body.password) {
        Ok(p) => p,
        Err(e) => return crate::error::engine_response(&e),
    };
    let user = match accounts::redeem_link(ctx.db(), &body.token, &password).await {
        Ok(u) => u,
        Err(e) => return crate::error::engine_response(&e),
    };
    let ip = ip.map(|i| i.to_string());
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let ttl =
        chrono::Duration::from_std(ctx.session_settings.ttl).unwrap_or(chrono::Duration::hours(12));
    match accounts::open_session(ctx.db(), &user, ip.as_deref(), user_agent, ttl).await {
        Ok(session) => opened(&ctx, session),
        Err(e) => internal(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgotPassword {
    email: String,
}

/// `POST /auth/forgot-password`: emails a reset link to an account of that address, at
/// most one per five minutes; the answer is the same whether or not there is one.
#[tracing::instrument(name = "forgot_password", skip_all)]
async fn forgot_password(State(ctx): State<ApiContext>, request: Request) -> Response {
    let (body, _, _) = match read::<ForgotPassword>(&ctx, request).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    // Answered at once, the same for every address; the lookup and the email happen after,
    // so the answer's timing says nothing about whether the address has an account.
    let db = ctx.db().clone();
    let mail = ctx.mail.clone();
    let public_url = ctx.public_url.clone();
    tokio::spawn(async move {
        let users = match accounts::reset_candidates(&db, &body.email).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %rapport_engine::error::chain(&e), "finding a reset's account failed");
                return;
            }
        };
        let Some(mail) = mail else {
            if !users.is_empty() {
                tracing::warn!("a password reset was asked for, but this server has no mailer");
            }
            return;
        };
        for u in users {
            let link = match accounts::issue_link(&db, &u, LinkPurpose::Reset, None).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %rapport_engine::error::chain(&e), "issuing a reset link failed");
                    continue;
                }
            };
            let url = password_link(&public_url, &link.token);
            if let Err(e) =
                send_link_email(&mail, &u, LinkPurpose::Reset, &url, link.record.id).await
            {
                tracing::warn!(error = %e, user = u.id, "sending a password reset failed");
            }
        }
    });
    (StatusCode::ACCEPTED, Json(json!({"accepted": true}))).into_response()
}

/// The console address where a one-time link's token sets a password. The token rides in
/// the fragment, which browsers never send to a server (nor to its logs).
pub fn password_link(public_url: &str, token: &str) -> String {
    format!(
        "{}/#/set-password?token={token}",
        public_url.trim_end_matches('/')
    )
}

/// Emails an invitation or a reset link.
pub async fn send_link_email(
    mail: &crate::graphql::Mail,
    u: &rapport_schema::user::Model,
    purpose: LinkPurpose,
    url: &str,
    link_id: i64,
) -> rapport_engine::Result<()> {
    let to = rapport_engine::values::EmailAddress::parse("email", &u.email)?;
    let (subject, lead, hours) = match purpose {
        LinkPurpose::Invite => (
            "You are invited to Rapport",
            "You have been invited to the Rapport console. Choose a password to sign in:",
            accounts::INVITATION_TTL.num_hours(),
        ),
        LinkPurpose::Reset => (
            "Reset your Rapport password",
            "Someone asked to reset the password of this address. If it was you, choose a new one:",
            accounts::RESET_TTL.num_hours(),
        ),
    };
    let name = crate::links::escape(&u.name);
    let href = crate::links::escape(url);
    let html = format!(
        "<p>Hello {name},</p><p>{lead}</p><p><a href=\"{href}\">Set your password</a></p>\
         <p>The link works once, for {hours} hours. If you did not expect this email, ignore it.</p>"
    );
    let text = format!(
        "Hello {},\n\n{lead}\n\n{url}\n\nThe link works once, for {hours} hours. If you did not expect this email, ignore it.\n",
        u.name
    );
    let message = email::build(&Outgoing {
        from: mail.from.clone(),
        from_name: Some("Rapport".into()),
        to,
        subject: subject.into(),
        html,
        text,
        key: format!("account-link/{}/{link_id}", u.id),
        unsubscribe_url: None,
    })?;
    mail.mailer.send(message).await
}
