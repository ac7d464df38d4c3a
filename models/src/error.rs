//! The one way fitting or reading a model fails: input it cannot use, naming the input.

/// Input a model cannot be fitted to or read from; `field` names the input at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The input at fault, in the caller's spelling.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Invalid {
    /// A complaint about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A model's result.
pub type Result<T, E = Invalid> = std::result::Result<T, E>;
