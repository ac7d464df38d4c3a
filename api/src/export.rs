//! `GET /export/contacts`: the contacts a filter picks, streamed as CSV (`format=csv`, the
//! default) or JSON lines (`format=jsonl`), a page of rows at a time, so an export of a
//! million contacts holds one page in memory. `filter` is the JSON form of the GraphQL
//! `ContactFilter` (the one `contacts(filter:)` takes), checked by the same parser. The
//! caller is authenticated from the headers (read scope) before anything else.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use rapport_engine::crm::filters::{ContactFilter, Evaluation, Filter, MAX_SUBQUERIES};
use rapport_engine::integrations::bulk::{self, Format};
use rapport_engine::values::Scope;

use crate::error::code;
use crate::http::{ApiContext, authenticate, error_response};

/// Bytes of the query string taken.
const MAX_QUERY: usize = 64 * 1024;

/// The export routes.
pub fn router() -> axum::Router<ApiContext> {
    axum::Router::new().route("/export/contacts", axum::routing::get(contacts))
}

fn invalid(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, code::VALIDATION, message)
}

async fn contacts(State(ctx): State<ApiContext>, request: Request) -> Response {
    let who = match authenticate(&ctx, request.headers()).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    if let Err(e) = who.require(Scope::Read) {
        return crate::error::engine_response(&e);
    }
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
    let parsed = match ContactFilter::parse("filter", &filter) {
        Ok(f) => f,
        Err(e) => return crate::error::engine_response(&e),
    };
    if parsed.cost() > MAX_SUBQUERIES {
        return invalid(&format!(
            "filter: reads other tables more than {MAX_SUBQUERIES} times"
        ));
    }
    let at = Evaluation::new(who.workspace_id, rapport_engine::clock::now());
    let condition = match parsed.condition(at) {
        Ok(c) => c,
        Err(e) => return crate::error::engine_response(&e),
    };
    let db = ctx.db.clone();
    let ws = who.workspace_id;
    let header = bulk::export_header(format);
    // The header, then a page per step until a page comes back empty; an error ends the
    // stream (the client sees a cut response, never a wrong one).
    let pages = stream::unfold(Some(0i64), move |after| {
        let db = db.clone();
        let condition = condition.clone();
        async move {
            let after = after?;
            match bulk::export_page(&db, ws, condition, after, format).await {
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
    let (media, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "contacts.csv"),
        Format::JsonLines => ("application/x-ndjson", "contacts.jsonl"),
    };
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}
