//! Rapport's built-in models: the algorithms only, pure functions of their inputs with no
//! database, each fitted in Rust and tested against published results or data with a known
//! answer. The engine's `intelligence::analytics` applies them to a workspace.
//!
//! A crate of its own so that debug builds (the tests) compile it optimised: fitting
//! Pareto/NBD or a hundred boosted trees unoptimised takes tens of seconds.

pub mod boosted;
pub mod classifier;
pub mod clv;
pub mod dual;
pub mod error;
pub mod features;
pub mod forecast;
pub mod logistic;
pub mod metrics;
pub mod optimize;
pub mod pareto_nbd;
pub mod rfm;
pub mod special;

pub use error::{Invalid, Result};
