//! GraphQL over HTTP, as the GraphQL Foundation's specification has it: what a request may
//! look like (a JSON `POST`, or a `GET` with URL parameters for queries), which media type
//! the answer takes (`application/json` or `application/graphql-response+json`, from
//! `Accept`), the status codes of each, and persisted documents — Apollo's automatic
//! persisted queries, or, for locked-down deployments, only a list of trusted documents.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::code;

/// Who may introspect the schema (`__schema`, `__type`); `__typename` always works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Introspection {
    /// Every key.
    #[default]
    On,
    /// No key.
    Off,
    /// Admin keys only.
    Admin,
}

/// The media types a GraphQL answer comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`: errors of the request itself still answer 200, as older
    /// clients expect.
    Json,
    /// `application/graphql-response+json`: a request that could not run answers 400,
    /// without a `data` entry.
    GraphqlResponse,
}

impl MediaType {
    fn content_type(self) -> &'static str {
        match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// The answer's media type from `Accept`: the one of ours with the highest weight (the
/// first listed on a tie); none given, `*/*` or `application/*` is `application/json`.
/// `None` when the client accepts neither.
pub fn negotiate(accept: Option<&str>) -> Option<MediaType> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(MediaType::Json);
    };
    let mut best: Option<(f32, MediaType)> = None;
    for range in accept.split(',').take(32) {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let weight = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let media = match name.as_str() {
            "application/graphql-response+json" => MediaType::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, media));
        }
    }
    best.map(|(_, m)| m)
}

/// Whether a browser asks for a page (GraphiQL) rather than data.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The parameters of a GraphQL request, checked for their types.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    /// The document; absent when a persisted one is named instead.
    pub query: Option<String>,
    /// Which operation of the document to run.
    pub operation_name: Option<String>,
    /// Variable values.
    pub variables: Map<String, Value>,
    /// Protocol extensions (`persistedQuery`).
    pub extensions: Map<String, Value>,
    /// A persisted document's id (`sha256:<hex>` or the hex alone).
    pub document_id: Option<String>,
}

/// Reads the parameters of a JSON body; `Err` says what is wrong (a 400).
pub fn from_json(body: &[u8]) -> Result<Params, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the request has no body; send {\"query\": \"...\"}".into());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the body must be a JSON object (a batch of requests is not accepted)".into());
    };
    let text = |object: &mut Map<String, Value>, name: &str| match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("'{name}' must be a string")),
    };
    let map = |object: &mut Map<String, Value>, name: &str| match object.remove(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(format!("'{name}' must be an object")),
    };
    Ok(Params {
        query: text(&mut object, "query")?,
        operation_name: text(&mut object, "operationName")?,
        variables: map(&mut object, "variables")?,
        extensions: map(&mut object, "extensions")?,
        document_id: text(&mut object, "documentId")?,
    })
}

/// Reads the parameters of a `GET`'s URL (`variables` and `extensions` as URL-encoded
/// JSON); `Err` says what is wrong (a 400).
pub fn from_query_string(query: &str) -> Result<Params, String> {
    let mut params = Params::default();
    let json_map = |name: &str, raw: &str| -> Result<Map<String, Value>, String> {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(Value::Null) => Ok(Map::new()),
            _ => Err(format!("'{name}' must be a JSON object")),
        }
    };
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "query" => params.query = Some(value.into_owned()),
            "operationName" => {
                params.operation_name = Some(value.into_owned()).filter(|s| !s.is_empty())
            }
            "variables" => params.variables = json_map("variables", &value)?,
            "extensions" => params.extensions = json_map("extensions", &value)?,
            "documentId" => params.document_id = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(params)
}

/// The hex SHA-256 of a document, as persisted documents name it.
pub fn document_hash(document: &str) -> String {
    Sha256::digest(document.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Documents registered by clients (automatic persisted queries) at most.
const MAX_REGISTERED: usize = 10_000;
/// And their bytes in all.
const MAX_REGISTERED_BYTES: usize = 64 * 1024 * 1024;

/// Persisted documents: those clients registered (oldest forgotten first past the
/// bounds), or, in trusted mode, only the listed ones.
#[derive(Debug, Default)]
pub struct Documents {
    registered: Mutex<Registered>,
    trusted: Option<HashMap<String, Arc<str>>>,
}

#[derive(Debug, Default)]
struct Registered {
    by_hash: HashMap<String, Arc<str>>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Why a persisted document could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum DocumentError {
    /// The hash names no document this server knows; send it with the query to register.
    NotFound,
    /// The request names a document that is not on the trusted list.
    NotTrusted,
    /// What was sent does not make a request.
    Invalid(String),
}

impl Documents {
    /// Automatic persisted queries: any client may register a document by sending it
    /// with its hash.
    pub fn automatic() -> Documents {
        Documents::default()
    }

    /// Only these documents run (keyed by their hex SHA-256, which is checked).
    pub fn trusted(list: HashMap<String, String>) -> Result<Documents, String> {
        let mut trusted = HashMap::with_capacity(list.len());
        for (hash, document) in list {
            let hash = hash
                .strip_prefix("sha256:")
                .unwrap_or(&hash)
                .to_ascii_lowercase();
            if document_hash(&document) != hash {
                return Err(format!(
                    "the trusted document listed as {hash} does not have that SHA-256"
                ));
            }
            trusted.insert(hash, Arc::from(document));
        }
        Ok(Documents {
            registered: Mutex::default(),
            trusted: Some(trusted),
        })
    }

    /// Whether only trusted documents run.
    pub fn is_trusted_only(&self) -> bool {
        self.trusted.is_some()
    }

    /// Fills in `params.query` from the document it names, or refuses what this server
    /// does not run. A document sent with its hash comes back as `Some(hash)`: register it
    /// with [`Documents::register`] once the request passed its checks.
    pub fn resolve(&self, params: &mut Params) -> Result<Option<String>, DocumentError> {
        let hash = self.named_hash(params)?;
        if let Some(trusted) = &self.trusted {
            let hash = match (&hash, &params.query) {
                (Some(h), _) => h.clone(),
                (None, Some(q)) => document_hash(q),
                (None, None) => {
                    return Err(DocumentError::Invalid("the request has no query".into()));
                }
            };
            let document = trusted.get(&hash).ok_or(DocumentError::NotTrusted)?;
            if params.query.as_deref().is_some_and(|q| q != &**document) {
                return Err(DocumentError::NotTrusted);
            }
            params.query = Some(document.to_string());
            return Ok(None);
        }
        match (hash, &params.query) {
            (Some(hash), Some(query)) => {
                if document_hash(query) != hash {
                    return Err(DocumentError::Invalid(
                        "the persisted query's sha256Hash is not the query's".into(),
                    ));
                }
                Ok(Some(hash))
            }
            (Some(hash), None) => {
                let found = self
                    .registered
                    .lock()
                    .expect("documents lock")
                    .by_hash
                    .get(&hash)
                    .cloned();
                params.query = Some(found.ok_or(DocumentError::NotFound)?.to_string());
                Ok(None)
            }
            (None, Some(_)) => Ok(None),
            (None, None) => Err(DocumentError::Invalid(
                "the request has no query; send {\"query\": \"...\"}".into(),
            )),
        }
    }

    /// The hash a request names: `extensions.persistedQuery.sha256Hash` (version 1) or
    /// `documentId`.
    fn named_hash(&self, params: &Params) -> Result<Option<String>, DocumentError> {
        if let Some(p) = params.extensions.get("persistedQuery") {
            let version = p.get("version").and_then(Value::as_i64);
            let hash = p.get("sha256Hash").and_then(Value::as_str);
            return match (version, hash) {
                (Some(1), Some(h)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Ok(Some(h.to_ascii_lowercase()))
                }
                _ => Err(DocumentError::Invalid(
                    "persistedQuery needs version 1 and a sha256Hash of 64 hex digits".into(),
                )),
            };
        }
        match &params.document_id {
            None => Ok(None),
            Some(id) => {
                let h = id.strip_prefix("sha256:").unwrap_or(id);
                if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(Some(h.to_ascii_lowercase()))
                } else {
                    Err(DocumentError::Invalid(
                        "documentId must be sha256:<64 hex digits>".into(),
                    ))
                }
            }
        }
    }

    /// Remembers a document under its hash (oldest forgotten first past the bounds).
    pub fn register(&self, hash: String, query: &str) {
        let mut r = self.registered.lock().expect("documents lock");
        if r.by_hash.contains_key(&hash) {
            return;
        }
        r.bytes += query.len();
        r.by_hash.insert(hash.clone(), Arc::from(query));
        r.order.push_back(hash);
        while r.by_hash.len() > MAX_REGISTERED || r.bytes > MAX_REGISTERED_BYTES {
            let Some(old) = r.order.pop_front() else {
                break;
            };
            if let Some(doc) = r.by_hash.remove(&old) {
                r.bytes -= doc.len();
            }
        }
    }
}

/// The kind of the operation `params` would run, when the document parses and names it
/// unambiguously (the execution reports the rest).
pub fn operation_kind(query: &str, operation_name: Option<&str>) -> Option<OperationType> {
    operation(query, operation_name).map(|(kind, _)| kind)
}

/// The kind and name of the operation a request runs (the one named, or the only one).
pub fn operation(
    query: &str,
    operation_name: Option<&str>,
) -> Option<(OperationType, Option<String>)> {
    let document = async_graphql::parser::parse_query(query).ok()?;
    operation_of(&document, operation_name)
}

/// [`operation`] of a parsed document.
pub fn operation_of(
    document: &async_graphql::parser::types::ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(OperationType, Option<String>)> {
    match &document.operations {
        DocumentOperations::Single(op) => Some((op.node.ty, None)),
        // A named operation is kept in `Multiple` even when it is the only one, and then
        // runs without its name being given.
        DocumentOperations::Multiple(ops) => match operation_name {
            Some(name) => ops
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(n, op)| (op.node.ty, Some(n.to_string()))),
            None if ops.len() == 1 => ops
                .iter()
                .next()
                .map(|(n, op)| (op.node.ty, Some(n.to_string()))),
            None => None,
        },
    }
}

/// Whether a document names `__schema` or `__type` (`__typename` is not introspection).
pub fn introspects(query: &str) -> bool {
    names_any(query, &["__schema", "__type"])
}

/// Whether a document asks for a secret: a key shown once, or a signed link that acts
/// for the person it names.
pub fn reveals_secret(query: &str) -> bool {
    names_any(
        query,
        &[
            "createApiKey",
            "createIngestKey",
            "inviteUser",
            "confirmUrl",
            "unsubscribeUrl",
            "preferencesUrl",
        ],
    )
}

/// Whether `query` holds one of `names` as a whole word.
fn names_any(query: &str, names: &[&str]) -> bool {
    names.iter().any(|name| {
        query.match_indices(name).any(|(at, _)| {
            !query[at + name.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

/// An answer in `media`, for an error found before the request ran.
pub fn request_error(media: MediaType, status: StatusCode, code: &str, message: &str) -> Response {
    let mut extensions = serde_json::json!({"code": code});
    crate::request_id::stamp(&mut extensions);
    let mut body = serde_json::json!({"errors": [{"message": message, "extensions": extensions}]});
    if media == MediaType::Json {
        body["data"] = Value::Null;
    }
    answer(media, status, &body)
}

/// The answer to an executed request: under `application/graphql-response+json` a
/// request that did not run (errors with no path and no data: the document did not
/// parse or validate, variables did not coerce) is a 400 without `data`.
pub fn executed(media: MediaType, response: async_graphql::Response) -> Response {
    let did_not_run = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let (status, body) = if media == MediaType::GraphqlResponse && did_not_run {
        let mut body = serde_json::json!({ "errors": response.errors });
        if !response.extensions.is_empty() {
            body["extensions"] = serde_json::to_value(&response.extensions).unwrap_or_default();
        }
        (StatusCode::BAD_REQUEST, serde_json::to_string(&body))
    } else {
        // Written from the response itself: its objects keep the order of the selection,
        // as the spec asks (a serde_json::Value would sort the keys).
        (StatusCode::OK, serde_json::to_string(&response))
    };
    let body = body.unwrap_or_else(|_| {
        serde_json::json!({"data": null, "errors": [{"message": "internal error", "extensions": {"code": code::INTERNAL}}]})
            .to_string()
    });
    answer_text(media, status, body)
}

/// A planned request's answer: its JSON body, written without errors.
pub fn answered(media: MediaType, body: Vec<u8>) -> Response {
    match String::from_utf8(body) {
        Ok(body) => answer_text(media, StatusCode::OK, body),
        Err(_) => request_error(
            media,
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "internal error",
        ),
    }
}

/// The answer kept for an `Idempotency-Key`, given again to a retry as it was written.
pub fn replayed(media: MediaType, body: &str) -> Response {
    match serde_json::from_str::<serde::de::IgnoredAny>(body) {
        Ok(_) => answer_text(media, StatusCode::OK, body.to_string()),
        Err(_) => request_error(
            media,
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INTERNAL,
            "internal error",
        ),
    }
}

fn answer(media: MediaType, status: StatusCode, body: &Value) -> Response {
    answer_text(media, status, body.to_string())
}

fn answer_text(media: MediaType, status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    // An answer depends on who asks and what they accept: never one for everyone.
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Authorization"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_heaviest_of_ours() {
        use MediaType::*;
        assert_eq!(negotiate(None), Some(Json));
        assert_eq!(negotiate(Some("*/*")), Some(Json));
        assert_eq!(negotiate(Some("application/json")), Some(Json));
        assert_eq!(
            negotiate(Some("application/graphql-response+json")),
            Some(GraphqlResponse)
        );
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(GraphqlResponse)
        );
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(Json)
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/json;q=0")), None);
    }

    #[test]
    fn parameters_have_their_types() {
        assert_eq!(
            from_json(br#"{"query": "{ a }", "variables": null, "operationName": null}"#)
                .unwrap()
                .query
                .as_deref(),
            Some("{ a }")
        );
        for bad in [
            r#"{"query": 1}"#,
            r#"{"query": "{ a }", "variables": "x"}"#,
            r#"{"query": "{ a }", "extensions": []}"#,
            r#"{"query": "{ a }", "operationName": false}"#,
            r#"[{"query": "{ a }"}]"#,
            "{",
            "",
        ] {
            assert!(from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        let get = from_query_string("query=%7B+a+%7D&variables=%7B%22x%22%3A1%7D").unwrap();
        assert_eq!(get.query.as_deref(), Some("{ a }"));
        assert_eq!(get.variables.get("x"), Some(&Value::from(1)));
        assert!(from_query_string("query=x&variables=%5B%5D").is_err());
    }

    #[test]
    fn persisted_queries_register_then_run_by_hash() {
        let docs = Documents::automatic();
        let query = "{ viewer { workspaceId } }";
        let hash = document_hash(query);
        let by_hash = |h: &str| Params {
            extensions: serde_json::json!({"persistedQuery": {"version": 1, "sha256Hash": h}})
                .as_object()
                .unwrap()
                .clone(),
            ..Params::default()
        };
        assert_eq!(
            docs.resolve(&mut by_hash(&hash)),
            Err(DocumentError::NotFound)
        );
        let mut register = by_hash(&hash);
        register.query = Some(query.into());
        assert_eq!(docs.resolve(&mut register), Ok(Some(hash.clone())));
        // Nothing is kept until the request passed its checks.
        assert_eq!(
            docs.resolve(&mut by_hash(&hash)),
            Err(DocumentError::NotFound)
        );
        docs.register(hash.clone(), query);
        let mut again = by_hash(&hash);
        assert_eq!(docs.resolve(&mut again), Ok(None));
        assert_eq!(again.query.as_deref(), Some(query));
        let mut lying = by_hash(&"0".repeat(64));
        lying.query = Some(query.into());
        assert!(matches!(
            docs.resolve(&mut lying),
            Err(DocumentError::Invalid(_))
        ));
    }

    #[test]
    fn trusted_mode_runs_only_the_list() {
        let listed = "{ viewer { workspaceId } }";
        let docs =
            Documents::trusted([(document_hash(listed), listed.to_string())].into()).unwrap();
        let mut by_id = Params {
            document_id: Some(format!("sha256:{}", document_hash(listed))),
            ..Params::default()
        };
        assert_eq!(docs.resolve(&mut by_id), Ok(None));
        assert_eq!(by_id.query.as_deref(), Some(listed));
        let mut same_text = Params {
            query: Some(listed.into()),
            ..Params::default()
        };
        assert_eq!(docs.resolve(&mut same_text), Ok(None));
        let mut other = Params {
            query: Some("{ contacts { totalCount } }".into()),
            ..Params::default()
        };
        assert_eq!(docs.resolve(&mut other), Err(DocumentError::NotTrusted));
        assert!(Documents::trusted([("ab".repeat(32), listed.to_string())].into()).is_err());
    }

    #[test]
    fn introspection_is_told_from_typename() {
        assert!(introspects("{ __schema { types { name } } }"));
        assert!(introspects("{ __type(name: \"Contact\") { name } }"));
        assert!(!introspects("{ contacts { __typename } }"));
    }

    #[test]
    fn the_operation_kind_is_read_from_the_document() {
        assert_eq!(operation_kind("{ a }", None), Some(OperationType::Query));
        assert_eq!(
            operation_kind("mutation { a }", None),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            operation_kind("query A { a } mutation B { b }", Some("B")),
            Some(OperationType::Mutation)
        );
        assert_eq!(operation_kind("query A { a } mutation B { b }", None), None);
        assert_eq!(
            operation_kind("mutation M { a }", None),
            Some(OperationType::Mutation)
        );
    }
}
