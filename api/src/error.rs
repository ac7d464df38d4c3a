//! Turning engine errors into GraphQL errors with a stable `extensions.code`.

use async_graphql::{Error, ErrorExtensions};
use rapport_engine::EngineError;

/// Stable codes clients can branch on.
pub mod code {
    /// No key, or a key that is unknown or revoked.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The key lacks the scope.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// No such record in the caller's workspace.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// Input that does not parse or breaks a rule.
    pub const VALIDATION: &str = "VALIDATION";
    /// The change collides with existing data.
    pub const CONFLICT: &str = "CONFLICT";
    /// Something broke on the server; details are only in the log.
    pub const INTERNAL: &str = "INTERNAL";
    /// The key spent its query budget; try again shortly.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The request ran past the server's deadline.
    pub const TIMEOUT: &str = "TIMEOUT";
}

/// The GraphQL error for an engine error. Our side's failures (database, internal) are
/// logged with their chain of causes and shown to the client as a bare "internal error".
pub fn to_graphql(e: EngineError) -> Error {
    let code = match &e {
        EngineError::NotFound { .. } => code::NOT_FOUND,
        EngineError::Validation { .. } => code::VALIDATION,
        EngineError::Conflict(_) => code::CONFLICT,
        EngineError::Forbidden(_) => code::FORBIDDEN,
        // Our side failed: the whole chain of causes goes to the log, none to the client.
        EngineError::Database(_) | EngineError::Internal(_) => {
            tracing::error!(error = %rapport_engine::error::chain(&e), "internal error");
            code::INTERNAL
        }
    };
    let field = match &e {
        EngineError::Validation { field, .. } => Some(field.clone()),
        _ => None,
    };
    let line = match &e {
        EngineError::Validation { message, .. } => line_in(message),
        _ => None,
    };
    Error::new(e.to_string()).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(f) = &field {
            ext.set("field", f.as_str());
        }
        if let Some(l) = line {
            ext.set("line", l);
        }
        if let Some(id) = crate::request_id::current() {
            ext.set("requestId", id);
        }
    })
}

/// The line an error concerns, when its message says (`… (line 3)`, as template and
/// filter errors do), so an editor can mark it.
fn line_in(message: &str) -> Option<u32> {
    let (_, rest) = message.rsplit_once("(line ")?;
    rest.split_once(')')?.0.trim().parse().ok()
}

/// `.gql()?` turns an engine result into a GraphQL result with the right code.
pub trait OrGraphql<T> {
    /// Converts the error side.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> OrGraphql<T> for Result<T, EngineError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(to_graphql)
    }
}

/// A validation error raised by the API layer itself (a malformed id, say).
pub fn invalid(field: &str, message: impl Into<String>) -> Error {
    to_graphql(EngineError::invalid(field, message))
}

/// The JSON answer to an engine error outside GraphQL (the sign-in routes), with the
/// same codes and the same silence about our side's failures.
pub fn engine_response(e: &EngineError) -> axum::response::Response {
    use axum::http::StatusCode;
    let (status, code, message) = match e {
        EngineError::NotFound { .. } => (StatusCode::NOT_FOUND, code::NOT_FOUND, e.to_string()),
        EngineError::Validation { .. } => {
            (StatusCode::BAD_REQUEST, code::VALIDATION, e.to_string())
        }
        EngineError::Conflict(_) => (StatusCode::CONFLICT, code::CONFLICT, e.to_string()),
        EngineError::Forbidden(_) => (StatusCode::FORBIDDEN, code::FORBIDDEN, e.to_string()),
        EngineError::Database(_) | EngineError::Internal(_) => {
            tracing::error!(error = %rapport_engine::error::chain(e), "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "internal error".to_string(),
            )
        }
    };
    let field = match e {
        EngineError::Validation { field, .. } => Some(field.clone()),
        _ => None,
    };
    let mut extensions = serde_json::json!({"code": code});
    if let Some(f) = field {
        extensions["field"] = f.into();
    }
    crate::request_id::stamp(&mut extensions);
    axum::response::IntoResponse::into_response((
        status,
        axum::Json(
            serde_json::json!({"data": null, "errors": [{"message": message, "extensions": extensions}]}),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::line_in;

    #[test]
    fn the_line_an_error_names_is_read_from_its_last_mention() {
        assert_eq!(line_in("does not parse: unexpected end (line 3)"), Some(3));
        assert_eq!(
            line_in("uses unknown variable 'x' (line 12) (known: a, b)"),
            Some(12)
        );
        assert_eq!(
            line_in("uses unknown variable 'x' (known: a (line b))"),
            None
        );
        assert_eq!(line_in("is required"), None);
    }
}
