//! Rapport's WebAssembly plugin host.
//!
//! A plugin is a WebAssembly component of the world `rapport:plugin/plugin` (the WIT in
//! `plugins/wit/`): it scores a contact, recommends next actions, or both. This crate
//! loads components into one shared wasmtime [`wasmtime::Engine`], caches their compiled
//! code on disk so a restart does not recompile, and runs each call in a fresh instance
//! under [`Limits`]: fuel, linear memory, wall time (epoch interruption), input, output and
//! log size. Whatever a plugin does — loop, allocate without end, trap, return garbage —
//! ends as an [`Error`] that names the limit or the fault; the host keeps running.
//!
//! Plugins see nothing of the world: the only import beyond a capped log is a locked-down
//! WASI (needed by the standard libraries of most languages) with no files, no network,
//! no environment, a clock stopped at the input's `as-of`, and fixed "randomness". The
//! same input therefore always gives the same answer.

mod admission;
mod error;
mod limits;
mod runtime;
mod sandbox;

pub use admission::{
    MAX_COMPONENT_BYTES, MAX_FUNCTION_BYTES, MAX_FUNCTIONS, MAX_LOCALS, MAX_MODULES, MAX_NESTING,
};
pub use error::{Error, Limit};
pub use limits::Limits;
pub use runtime::{Loaded, Runtime, sha256_hex};
pub use sandbox::{
    Action, ActionKind, Attempt, Call, Capabilities, Description, Input, LogLine, Reason, Score,
};
