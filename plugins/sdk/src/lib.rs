//! Write Rapport plugins in Rust.
//!
//! A plugin implements [`Guest`] and exports itself with [`plugin!`]:
//!
//! ```ignore
//! use rapport_plugin_sdk::*;
//!
//! struct Warmth;
//!
//! impl Guest for Warmth {
//!     fn describe() -> Description {
//!         describe("warmth", "1.0.0", Capabilities::SCORE)
//!     }
//!     fn score(input: Input) -> Result<ScoreResult, PluginError> {
//!         let data: serde_json::Value = input.data()?;
//!         let meetings = data.pointer("/contact/activities/totalCount").and_then(|v| v.as_f64()).unwrap_or(0.0);
//!         Ok(ScoreResult::new(10.0 * meetings).reason("meetings", 10.0 * meetings, "recent meetings"))
//!     }
//!     fn next_best_actions(_: Input) -> Result<Vec<Action>, PluginError> {
//!         Err(unsupported())
//!     }
//! }
//!
//! plugin!(Warmth);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to register.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        // `wit` is a link to `plugins/wit`, so the published crate carries the contract.
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "rapport_plugin_sdk::bindings",
        generate_all,
    });
}

pub use bindings::rapport::plugin::host::{self, Level};
pub use bindings::rapport::plugin::types::{ActionKind, Capabilities, Reason};
pub use bindings::{Action, Description, Guest, Input, PluginError, ScoreResult};
pub use serde;
pub use serde_json;
pub use time::epoch_days;

mod time;

/// Exports `$t`, an implementation of [`Guest`], as the component's plugin.
#[macro_export]
macro_rules! plugin {
    ($t:ident) => {
        $crate::bindings::export!($t with_types_in $crate::bindings);
    };
}

impl Input {
    /// The input query's result, parsed into `T` (a `serde_json::Value` takes anything).
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_str(&self.data).map_err(|e| bad_input(format!("input data: {e}")))
    }

    /// The plugin's configuration, parsed into `T`.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_str(&self.config).map_err(|e| bad_input(format!("configuration: {e}")))
    }
}

impl ScoreResult {
    /// A score, clamped to 0–100, with no reasons yet.
    pub fn new(score: f64) -> Self {
        ScoreResult {
            score: if score.is_nan() { 0.0 } else { score.clamp(0.0, 100.0) },
            reasons: Vec::new(),
        }
    }

    /// Adds a reason; [`ScoreResult::sorted`] orders them strongest first.
    pub fn reason(mut self, feature: &str, contribution: f64, note: &str) -> Self {
        self.reasons.push(Reason {
            feature: feature.into(),
            contribution,
            note: note.into(),
        });
        self
    }

    /// Orders the reasons by the size of their contribution, largest first.
    pub fn sorted(mut self) -> Self {
        self.reasons
            .sort_by(|a, b| b.contribution.abs().total_cmp(&a.contribution.abs()));
        self
    }
}

impl Action {
    /// An action of `kind` with a priority (0–100, higher first) and the reason for it.
    pub fn new(kind: ActionKind, priority: u32, rationale: &str) -> Self {
        Action {
            kind,
            params: Vec::new(),
            priority: priority.min(100),
            rationale: rationale.into(),
        }
    }

    /// Adds a parameter.
    pub fn param(mut self, key: &str, value: impl ToString) -> Self {
        self.params.push((key.into(), value.to_string()));
        self
    }
}

/// The plugin's description.
pub fn describe(name: &str, version: &str, implements: Capabilities) -> Description {
    Description {
        name: name.into(),
        version: version.into(),
        implements,
    }
}

/// The error for an export the plugin does not implement.
pub fn unsupported() -> PluginError {
    PluginError {
        code: "unsupported".into(),
        message: "this plugin does not implement this export".into(),
    }
}

/// The error for input the plugin cannot use.
pub fn bad_input(message: impl Into<String>) -> PluginError {
    PluginError {
        code: "bad-input".into(),
        message: message.into(),
    }
}

/// Writes a line to the call's log (capped by the host).
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

