//! What Rapport learns and says about contacts and deals: the statistical [`models`],
//! the [`analytics`] built on them (scores, forecasts, segments, recommendations, stored
//! per version), and WebAssembly [`plugins`] that score and recommend next best actions.
//!
//! May use: everything below it — the root vocabulary, [`crate::platform`], [`crate::crm`]
//! and [`crate::engagement`] (accepted plugin actions enroll contacts in sequences).

pub mod analytics;
pub mod models;
pub mod plugins;
