//! Lead capture over HTTP: the JSON routes a website's pages call with a publishable
//! ingest key (`/capture/v1/identify`, `/capture/v1/track`), and the sign-up forms
//! Rapport hosts (`/f/<public id>`).
//!
//! Checked in this order, each before the work the next would cause: the caller's
//! address against its per-address budget, the `Origin` (a browser always sends it) and
//! the key (an ingest key, never an API key) against the key's origins, the key's own
//! budget, then the body, read only up to [`CAPTURE_BODY_BYTES`]. Answers say only that
//! the request was accepted: an ingest key reads nothing.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rapport_engine::EngineError;
use rapport_engine::engagement::capture::{self, OptIn, Visitor, forms, keys};
use rapport_engine::engagement::consent;
use rapport_engine::platform::idempotency;
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;

use crate::cors;
use crate::error::code;
use crate::http::{ApiContext, bearer, bounded_body, error_response, is_json};
use crate::links::{escape, page, proof};

/// Bytes of a capture request's JSON body.
pub const CAPTURE_BODY_BYTES: usize = 16 * 1024;
/// Bytes of a hosted form's sending.
pub const FORM_BODY_BYTES: usize = 8 * 1024;

/// The capture routes and the hosted forms.
pub fn router() -> axum::Router<ApiContext> {
    axum::Router::new()
        .route(
            "/capture/v1/identify",
            post(identify).options(capture_preflight),
        )
        .route("/capture/v1/track", post(track).options(capture_preflight))
        .route("/f/{public_id}", get(form_page).post(submit_form))
}

/// Requests per minute a caller may make, by address and by ingest key.
#[derive(Clone, Copy, Debug)]
pub struct CaptureLimits {
    /// From one client address (hosted forms and the JSON routes together).
    pub per_ip_per_minute: u32,
    /// With one ingest key, from everywhere.
    pub per_key_per_minute: u32,
}

/// The defaults, which the command line's flags also start from.
pub const DEFAULT_CAPTURE_LIMITS: CaptureLimits = CaptureLimits {
    per_ip_per_minute: 30,
    per_key_per_minute: 600,
};

/// The budgets of this process.
pub struct Budgets {
    per_ip: crate::rate_limit::Buckets<IpAddr>,
    per_key: crate::rate_limit::Buckets<i64>,
}

impl Budgets {
    /// Budgets of `limits`.
    pub fn new(limits: CaptureLimits) -> Self {
        Self {
            per_ip: crate::rate_limit::Buckets::per_minute(limits.per_ip_per_minute),
            per_key: crate::rate_limit::Buckets::per_minute(limits.per_key_per_minute),
        }
    }
}

fn rate_limited(wait: Duration, what: &str) -> Response {
    crate::http::too_many(wait, &format!("too many requests {what}; retry later"))
}

fn peer_ip(ctx: &ApiContext, request: &Request) -> Option<IpAddr> {
    crate::http::request_ip(ctx, request)
}

fn within_ip_budget(ctx: &ApiContext, ip: Option<IpAddr>) -> Result<(), Duration> {
    ctx.capture
        .per_ip
        .take(crate::rate_limit::address_key(ip), 1.0)
}

/// `OPTIONS /capture/v1/*`: a preflight carries no key, so it is told whether any live
/// ingest key names its origin; the request itself is checked against its own key.
async fn capture_preflight(State(ctx): State<ApiContext>, request: Request) -> Response {
    // A preflight reads the database too: it draws on the address's budget.
    if let Err(wait) = within_ip_budget(&ctx, peer_ip(&ctx, &request)) {
        return rate_limited(wait, "from this address");
    }
    let origin = cors::origin(request.headers());
    let allowed = match &origin {
        Some(o) => match keys::origin_known(ctx.db(), o).await {
            Ok(known) => known,
            Err(e) => {
                tracing::error!(error = ?e, "checking a capture origin failed");
                false
            }
        },
        None => false,
    };
    cors::preflight(origin.as_ref(), allowed, "POST")
}

/// A capture request that passed every check before its body.
struct Admitted {
    caller: keys::IngestCaller,
    origin: keys::WebOrigin,
    request: Request,
}

async fn admit(ctx: &ApiContext, request: Request) -> Result<Admitted, Response> {
    within_ip_budget(ctx, peer_ip(ctx, &request))
        .map_err(|wait| rate_limited(wait, "from this address"))?;
    let Some(origin) = cors::origin(request.headers()) else {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "lead capture is called from the web pages of an allowed origin (the Origin header)",
        ));
    };
    let Some(presented) = bearer(request.headers()) else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "missing 'Authorization: Bearer <ingest key>' header",
        ));
    };
    let caller = match keys::authenticate(ctx.db(), presented, Some(&origin)).await {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                code::UNAUTHENTICATED,
                "the ingest key is unknown or revoked",
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    if !caller.origin_allowed {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            code::FORBIDDEN,
            "this ingest key may not be used from this origin",
        ));
    }
    ctx.capture
        .per_key
        .take(caller.key_id, 1.0)
        .map_err(|wait| rate_limited(wait, "with this ingest key"))?;
    if !is_json(request.headers()) {
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::VALIDATION,
            "send the request as Content-Type: application/json",
        ));
    }
    let request = bounded_body(request, CAPTURE_BODY_BYTES).await?;
    Ok(Admitted {
        caller,
        origin,
        request,
    })
}

fn internal(e: EngineError) -> Response {
    tracing::error!(error = ?e, "lead capture failed");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        code::INTERNAL,
        "internal error",
    )
}

fn refusal(e: EngineError) -> Response {
    match e {
        EngineError::Validation { .. } => {
            error_response(StatusCode::BAD_REQUEST, code::VALIDATION, &e.to_string())
        }
        e => internal(e),
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({"accepted": true}))).into_response()
}

/// `POST /capture/v1/identify` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdentifyBody {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    /// Ask for marketing consent by double opt-in.
    #[serde(default)]
    opt_in: bool,
}

/// `POST /capture/v1/track` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TrackBody {
    email: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    properties: serde_json::Value,
}

/// Runs `work` on an admitted request's JSON body, once per `Idempotency-Key`.
async fn captured<B, F>(
    ctx: ApiContext,
    request: Request,
    work: impl FnOnce(ApiContext, keys::IngestCaller, B) -> F,
) -> Response
where
    B: serde::de::DeserializeOwned,
    F: std::future::Future<Output = Result<(), EngineError>>,
{
    let key = match crate::idempotency::from_headers(request.headers()) {
        Ok(k) => k,
        Err(message) => return crate::idempotency::malformed(&message),
    };
    let path = request.uri().path().to_string();
    let Admitted {
        caller,
        origin,
        request,
    } = match admit(&ctx, request).await {
        Ok(a) => a,
        Err(refused) => return refused,
    };
    let allowed = |response: Response| cors::allow(response, &origin);
    let Ok(bytes) = axum::body::to_bytes(request.into_body(), CAPTURE_BODY_BYTES).await else {
        return allowed(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::VALIDATION,
            "the request body is too large",
        ));
    };
    let body: B = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return allowed(error_response(
                StatusCode::BAD_REQUEST,
                code::VALIDATION,
                &format!("the body is not what {path} takes: {e}"),
            ));
        }
    };
    let ws = caller.workspace_id;
    let claim = match &key {
        None => None,
        Some(key) => {
            let fingerprint =
                idempotency::fingerprint(&["capture", &path, &String::from_utf8_lossy(&bytes)]);
            let who = format!("ingest:{}", caller.key_id);
            match crate::idempotency::begin(&ctx, ws, &who, key, &fingerprint, |_| accepted()).await
            {
                crate::idempotency::Begun::Run(claim) => Some(claim),
                crate::idempotency::Begun::Answer(answer) => return allowed(answer),
            }
        }
    };
    let response = match work(ctx.clone(), caller, body).await {
        Ok(()) => accepted(),
        Err(e) => refusal(e),
    };
    if let Some(claim) = claim {
        // A capture is checked whole before it writes: a refusal changed nothing.
        let outcome = if response.status() == StatusCode::ACCEPTED {
            crate::idempotency::Outcome::Answered("{\"accepted\":true}")
        } else {
            crate::idempotency::Outcome::Released
        };
        crate::idempotency::finish(&ctx, claim, outcome).await;
    }
    allowed(response)
}

/// `POST /capture/v1/identify`: identifies or creates the visitor's contact by email,
/// and with `optIn` asks them for marketing consent by double opt-in.
#[tracing::instrument(name = "capture.identify", skip_all)]
async fn identify(State(ctx): State<ApiContext>, request: Request) -> Response {
    captured(ctx, request, |ctx, caller, body: IdentifyBody| async move {
        let source = format!("website: {}", caller.name);
        let visitor = Visitor {
            email: body.email,
            first_name: body.first_name,
            last_name: body.last_name,
            phone: body.phone,
        };
        let found = capture::identify(ctx.db(), caller.workspace_id, &visitor, &source).await?;
        if let (true, capture::Identified::Contact { id, .. }) = (body.opt_in, found) {
            let opt_in =
                capture::request_opt_in(ctx.db(), caller.workspace_id, id, &source).await?;
            send_confirmation(&ctx, opt_in).await;
        }
        Ok(())
    })
    .await
}

/// `POST /capture/v1/track`: records an event for the visitor with this email.
#[tracing::instrument(name = "capture.track", skip_all)]
async fn track(State(ctx): State<ApiContext>, request: Request) -> Response {
    captured(ctx, request, |ctx, caller, body: TrackBody| async move {
        let source = format!("website: {}", caller.name);
        let visitor = Visitor {
            email: body.email,
            ..Default::default()
        };
        capture::track(
            ctx.db(),
            caller.workspace_id,
            &visitor,
            &source,
            &body.event_type,
            body.properties,
        )
        .await?;
        Ok(())
    })
    .await
}

/// Emails the confirmation link of a double opt-in just asked for. A mail server that
/// fails is logged, not told to the visitor: the request stands, and asking again after
/// [`capture::OPT_IN_RESEND_HOURS`] sends another.
async fn send_confirmation(ctx: &ApiContext, opt_in: OptIn) {
    let OptIn::Asked { pending, token } = opt_in else {
        return;
    };
    let Some(mail) = &ctx.mail else {
        tracing::warn!("a double opt-in was asked for, but this server has no mailer");
        return;
    };
    let confirm_url = format!("{}/consent/confirm?token={token}", ctx.public_url);
    match consent::send_confirmation(ctx.db(), &mail.mailer, &mail.from, &pending, &confirm_url)
        .await
    {
        Ok(None) => {}
        Ok(Some(why)) => tracing::info!(%why, "the confirmation email was not sent"),
        Err(e) => tracing::error!(error = ?e, "sending a confirmation email failed"),
    }
}

/// What a visitor typed into a hosted form.
#[derive(Default)]
struct Typed {
    email: String,
    first_name: String,
    last_name: String,
    phone: String,
    /// A field people never see: bots fill it in.
    trap: String,
}

fn form_html(
    form: &rapport_schema::capture_form::Model,
    typed: &Typed,
    error: Option<&str>,
) -> String {
    let mut html = String::new();
    if let Some(error) = error {
        html.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        ));
    }
    html.push_str(&format!(
        "<form method=\"post\" action=\"/f/{}\">",
        escape(&form.public_id)
    ));
    let input = |name: &str, label: &str, kind: &str, value: &str, required: bool| {
        format!(
            "<label for=\"{name}\">{label}</label><input id=\"{name}\" name=\"{name}\" \
             type=\"{kind}\" value=\"{}\" autocomplete=\"{}\"{}>",
            escape(value),
            match name {
                "email" => "email",
                "first_name" => "given-name",
                "last_name" => "family-name",
                _ => "tel",
            },
            if required { " required" } else { "" }
        )
    };
    for field in forms::fields_of(form) {
        use rapport_engine::values::FormField;
        html.push_str(&match field {
            FormField::FirstName => {
                input("first_name", "First name", "text", &typed.first_name, false)
            }
            FormField::LastName => input("last_name", "Last name", "text", &typed.last_name, false),
            FormField::Phone => input("phone", "Phone", "tel", &typed.phone, false),
        });
    }
    html.push_str(&input(
        "email",
        "Email address",
        "email",
        &typed.email,
        true,
    ));
    html.push_str(
        "<div class=\"trap\" aria-hidden=\"true\"><label for=\"website\">Leave this empty\
         </label><input id=\"website\" name=\"website\" type=\"text\" tabindex=\"-1\" \
         autocomplete=\"off\"></div><button type=\"submit\">Sign up</button></form>",
    );
    let consent_line = if form.double_opt_in {
        "We will email you a link to confirm. You can unsubscribe at any time."
    } else {
        "You can unsubscribe at any time from any email we send."
    };
    html.push_str(&format!("<p class=\"fine\">{consent_line}</p>"));
    html
}

fn no_form() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "This form is not available",
        "<p>It may have been closed. Please check the address.</p>",
    )
}

/// `GET /f/{public_id}`: the sign-up form.
async fn form_page(State(ctx): State<ApiContext>, Path(public_id): Path<String>) -> Response {
    match forms::published(ctx.db(), &public_id).await {
        Ok(Some(form)) => page(
            StatusCode::OK,
            &escape(&form.title),
            &form_html(&form, &Typed::default(), None),
        ),
        Ok(None) => no_form(),
        Err(e) => {
            tracing::error!(error = ?e, "showing a form failed");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "<p>Please try again in a moment.</p>",
            )
        }
    }
}

/// `POST /f/{public_id}`: a sign-up.
#[tracing::instrument(name = "capture.form", skip_all)]
async fn submit_form(
    State(ctx): State<ApiContext>,
    Path(public_id): Path<String>,
    request: Request,
) -> Response {
    if let Err(wait) = within_ip_budget(&ctx, peer_ip(&ctx, &request)) {
        let mut refused = page(
            StatusCode::TOO_MANY_REQUESTS,
            "Please wait a moment",
            "<p>Too many sign-ups came from your address just now. Please try again in a minute.</p>",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            refused.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return refused;
    }
    let form = match forms::published(ctx.db(), &public_id).await {
        Ok(Some(form)) => form,
        Ok(None) => return no_form(),
        Err(e) => return internal_page(e),
    };
    let proof = proof(&ctx, request.extensions(), request.headers());
    let Ok(request) = bounded_body(request, FORM_BODY_BYTES).await else {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "This form is too large",
            "<p>Please try again from the form.</p>",
        );
    };
    let Ok(bytes) = axum::body::to_bytes(request.into_body(), FORM_BODY_BYTES).await else {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "This form is too large",
            "<p>Please try again from the form.</p>",
        );
    };
    let mut typed = Typed::default();
    for (name, value) in form_urlencoded::parse(&bytes) {
        let slot = match name.as_ref() {
            "email" => &mut typed.email,
            "first_name" => &mut typed.first_name,
            "last_name" => &mut typed.last_name,
            "phone" => &mut typed.phone,
            "website" => &mut typed.trap,
            _ => continue,
        };
        *slot = value.into_owned();
    }
    let thanks = || {
        page(
            StatusCode::OK,
            "Thank you",
            &format!("<p>{}</p>", escape(&form.success_message)),
        )
    };
    if !typed.trap.is_empty() {
        // A bot: it is told what a person would be, and nothing is stored.
        return thanks();
    }
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
    let visitor = Visitor {
        email: typed.email.clone(),
        first_name: some(&typed.first_name),
        last_name: some(&typed.last_name),
        phone: some(&typed.phone),
    };
    match forms::submit(ctx.db(), &form, visitor, proof).await {
        Ok(submitted) => {
            if let Some(opt_in) = submitted.opt_in {
                send_confirmation(&ctx, opt_in).await;
            }
            thanks()
        }
        Err(EngineError::Validation { message, field }) => page(
            StatusCode::BAD_REQUEST,
            &escape(&form.title),
            &form_html(
                &form,
                &typed,
                Some(&if field == "email" {
                    "Please enter a valid email address.".to_string()
                } else {
                    format!("Please check {}: {message}.", field.replace('_', " "))
                }),
            ),
        ),
        Err(e) => internal_page(e),
    }
}

fn internal_page(e: EngineError) -> Response {
    tracing::error!(error = ?e, "taking a sign-up failed");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "<p>Please try again in a moment.</p>",
    )
}
