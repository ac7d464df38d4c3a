//! What can go wrong with a plugin.

use std::fmt;

/// A limit a call can exhaust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Instructions executed (wasmtime fuel).
    Fuel,
    /// Linear memory, in bytes.
    Memory,
    /// Wall-clock time.
    Time,
    /// Size of the input handed to the plugin.
    Input,
    /// Size of the result the plugin returned.
    Output,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Fuel => "fuel",
            Limit::Memory => "memory",
            Limit::Time => "time",
            Limit::Input => "input size",
            Limit::Output => "output size",
        })
    }
}

/// A plugin that could not be loaded, or a call that did not produce a usable answer.
///
/// Every message is safe to show the plugin's author: it names the fault, never the
/// host's internals.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a WebAssembly component that compiles.
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component is over a size or shape cap, refused before compiling.
    #[error("too large to compile: {0}")]
    TooLarge(String),
    /// The component imports something the host does not provide.
    #[error("the component imports something Rapport does not provide: {0}")]
    MissingImport(String),
    /// The component does not export the `rapport:plugin/plugin` world.
    #[error("the component does not implement the rapport:plugin@0.1.0 world: {0}")]
    WrongWorld(String),
    /// A limit was exhausted.
    #[error("exceeded its {limit} limit ({detail})")]
    Limit {
        /// Which limit.
        limit: Limit,
        /// The limit's value and what was asked for.
        detail: String,
    },
    /// The plugin trapped (a panic, an unreachable instruction, a bad memory access).
    #[error("trapped: {0}")]
    Trap(String),
    /// The plugin answered with an error of its own.
    #[error("refused the input ({code}): {message}")]
    Refused {
        /// The plugin's short code ("unsupported", "bad-input").
        code: String,
        /// The plugin's message.
        message: String,
    },
    /// The plugin answered with something the contract does not allow.
    #[error("returned a malformed result: {0}")]
    Malformed(String),
    /// The compiled-code cache could not be read or written.
    #[error("plugin cache: {0}")]
    Cache(String),
}

/// At most 200 characters of `text` (names a component chose can be long).
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

impl Error {
    /// Whether the plugin said it does not implement the export called.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Refused { code, .. } if code == "unsupported")
    }
}
