//! Files to download, streamed a page or chunk at a time so a large one holds little in
//! memory:
//! - `GET /export/{contacts|companies|deals}`: the records a filter picks, as CSV
//!   (`format=csv`, the default) or JSON lines (`format=jsonl`). `filter` is the JSON form
//!   of the list's GraphQL filter (`ContactFilter`, `CompanyFilter`, `DealFilter`),
//!   checked by the same parser.
//! - `GET /imports/{id}/rejects`: an import's refused rows with their reasons.
//!
//! The caller is authenticated from the headers (read scope) before anything else.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use rapport_engine::crm::filters::{
    CompanyFilter, ContactFilter, DealFilter, Evaluation, Filter, MAX_SUBQUERIES,
};
use rapport_engine::error::EngineError;
use rapport_engine::integrations::bulk::{self, Format, Kind};
use rapport_engine::integrations::imports;
use rapport_engine::platform::auth::Principal;
use rapport_engine::values::Scope;
use sea_orm::sea_query::Condition;

use crate::error::code;
use crate::http::{ApiContext, authenticate, error_response};

/// Bytes of the query string taken.
const MAX_QUERY: usize = 64 * 1024;

/// The download routes.
pub fn router() -> axum::Router<ApiContext> {
    axum::Router::new()
        .route("/export/{kind}", axum::routing::get(export))
        .route("/imports/{id}/rejects", axum::routing::get(rejects))
}

fn invalid(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code::VALIDATION, message)
}

/// The caller, with read scope.
async fn reader(ctx: &ApiContext, headers: &axum::http::HeaderMap) -> Result<Principal, Response> {
    let who = authenticate(ctx, headers).await?;
    who.require(Scope::Read)
        .map_err(|e| crate::error::engine_response(&e))?;
    Ok(who)
}

/// The SQL condition of `filter` for `kind`, checked as the GraphQL list checks it.
fn condition(
    kind: Kind,
    filter: &serde_json::Value,
    at: Evaluation,
) -> Result<Condition, EngineError> {
    match kind {
        Kind::Contacts => {
            let parsed = ContactFilter::parse("filter", filter)?;
            if parsed.cost() > MAX_SUBQUERIES {
                return Err(EngineError::invalid(
                    "filter",
                    format!("reads other tables more than {MAX_SUBQUERIES} times"),
                ));
            }
            parsed.condition(at)
        }
        Kind::Companies => CompanyFilter::parse("filter", filter)?.condition(at),
        Kind::Deals => DealFilter::parse("filter", filter)?.condition(at),
    }
}

fn attachment(mut response: Response, media: &'static str, name: &str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

async fn export(
    State(ctx): State<ApiContext>,
    Path(kind): Path<String>,
    request: Request,
) -> Response {
    let who = match reader(&ctx, request.headers()).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let kind = match Kind::parse("kind", &kind) {
        Ok(k) => k,
        Err(_) => {
            return error_response(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "export contacts, companies or deals",
            );
        }
    };
    let query = request.uri().query().unwrap_or_default();
    if query.len() > MAX_QUERY {
        return invalid("the query string is too long");
    }
    let mut format = Format::Csv;
    let mut filter = serde_json::Value::Object(Default::default());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "format" => {
                format = match value.as_ref() {
                    "csv" => Format::Csv,
                    "jsonl" => Format::JsonLines,
                    _ => return invalid("format: csv or jsonl"),
                }
            }
            "filter" => match serde_json::from_str(&value) {
                Ok(v) => filter = v,
                Err(e) => return invalid(&format!("filter: not JSON: {e}")),
            },
            other => return invalid(&format!("unknown parameter {other:?}: format, filter")),
        }
    }
    let at = Evaluation::new(who.workspace_id, rapport_engine::clock::now());
    let condition = match condition(kind, &filter, at) {
        Ok(c) => c,
        Err(e) => return crate::error::engine_response(&e),
    };
    let db = ctx.db.clone();
    let ws = who.workspace_id;
    let header = bulk::export_header(kind, format);
    // The header, then a page per step until a page comes back empty; an error ends the
    // stream (the client sees a cut response, never a wrong one).
    let pages = stream::unfold(Some(0i64), move |after| {
        let db = db.clone();
        let condition = condition.clone();
        async move {
            let after = after?;
            match bulk::export_page(&db, kind, ws, condition, after, format).await {
                Ok(Some((bytes, last))) => Some((Ok(Bytes::from(bytes)), Some(last))),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %rapport_engine::error::chain(&e), "an export failed");
                    Some((Err(std::io::Error::other("the export failed")), None))
                }
            }
        }
    });
    let body =
        stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(header)) }).chain(pages);
    let (media, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
    };
    attachment(
        Body::from_stream(body).into_response(),
        media,
        &format!("{}.{extension}", kind.as_str()),
    )
}

/// An import's reject file, a stored chunk at a time.
async fn rejects(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let who = match reader(&ctx, request.headers()).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let Ok(id) = id.parse::<i64>() else {
        return invalid("the import id is a number");
    };
    let ws = who.workspace_id;
    // The first chunk is read before answering, so an unknown import is a 404, not a cut
    // stream.
    let first = match imports::rejects_chunk(&ctx.db, ws, id, 0).await {
        Ok(Some(data)) => data,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                "this import has no reject file (no row was refused, or it expired)",
            );
        }
        Err(e) => return crate::error::engine_response(&e),
    };
    let db = ctx.db.clone();
    let rest = stream::unfold(Some(1i32), move |seq| {
        let db = db.clone();
        async move {
            let seq = seq?;
            match imports::rejects_chunk(&db, ws, id, seq).await {
                Ok(Some(data)) => Some((Ok(Bytes::from(data)), Some(seq + 1))),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %rapport_engine::error::chain(&e), "a reject file failed");
                    Some((Err(std::io::Error::other("the download failed")), None))
                }
            }
        }
    });
    let body = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) }).chain(rest);
    attachment(
        Body::from_stream(body).into_response(),
        "text/csv; charset=utf-8",
        &format!("import-{id}-rejects.csv"),
    )
}
