//! The engine's one error type.

use sea_orm::DbErr;

/// Everything a domain operation can refuse or fail with.
///
/// The `Display` text of every variant is safe to show a client: the database variant
/// deliberately says nothing about the SQL or the server behind it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The record does not exist, or belongs to another workspace (the two are not told apart).
    #[error("{entity} {id} not found")]
    NotFound {
        /// The kind of record, as clients know it ("Contact", "Deal", ...).
        entity: &'static str,
        /// The id the client asked for.
        id: String,
    },
    /// Input that does not parse or breaks a rule; `field` names the input that is wrong.
    #[error("{field}: {message}")]
    Validation {
        /// The input field at fault, in the client's spelling.
        field: String,
        /// What is wrong, in plain words.
        message: String,
    },
    /// The change collides with existing data (a duplicate natural key, a closed deal).
    #[error("{0}")]
    Conflict(String),
    /// The caller is known but lacks the scope the operation needs.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed; the details go to the log, never to the client.
    #[error("internal error")]
    Database(#[source] DbErr),
    /// Something on our side broke (a damaged secret, a host that could not start, a full
    /// disk); what broke and why go to the log, never to the client.
    #[error("internal error")]
    Internal(#[source] Internal),
}

/// What broke on our side, with the error that caused it when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct Internal {
    what: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// An error and every cause under it, `: `-separated, for the log (never for clients).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl From<DbErr> for EngineError {
    /// Constraint violations are the client's doing (a duplicate key, a row still in
    /// use), so they become conflicts; everything else stays internal.
    fn from(e: DbErr) -> Self {
        match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => {
                Self::Conflict("a record with the same unique key already exists".into())
            }
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => Self::Conflict(
                "the record is still referenced by other records, or references a missing one"
                    .into(),
            ),
            _ => Self::Database(e),
        }
    }
}

impl From<rapport_models::Invalid> for EngineError {
    fn from(e: rapport_models::Invalid) -> Self {
        Self::Validation {
            field: e.field,
            message: e.message,
        }
    }
}

impl EngineError {
    /// A validation error for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Our side failing, with what broke (for the log only).
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(Internal {
            what: what.into(),
            cause: None,
        })
    }

    /// Our side failing because of `cause`, which is kept as the error's source.
    pub fn internal_from(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal(Internal {
            what: what.into(),
            cause: Some(Box::new(cause)),
        })
    }

    /// A not-found error for a record of kind `entity`.
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}

/// Result of a domain operation.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
