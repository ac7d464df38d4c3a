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
    Error::new(e.to_string()).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(f) = &field {
            ext.set("field", f.as_str());
        }
    })
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
