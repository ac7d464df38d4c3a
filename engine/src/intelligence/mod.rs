//! What Rapport learns and says about contacts and deals: the statistical [`models`] (the
//! `rapport-models` crate, re-exported here),
//! the [`analytics`] built on them (scores, forecasts, segments, recommendations, stored
//! per version), and WebAssembly [`plugins`] that score and recommend next best actions.
//!
//! May use: everything below it — the root vocabulary, [`crate::platform`], [`crate::crm`]
//! and [`crate::engagement`] (accepted plugin actions enroll contacts in sequences).

pub mod analytics;
pub use rapport_models as models;
pub mod plugins;
