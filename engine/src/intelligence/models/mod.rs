//! Built-in models, each fitted in Rust and tested against published results or data
//! with a known answer.

pub mod boosted;
pub mod classifier;
pub mod clv;
pub mod dual;
pub mod features;
pub mod forecast;
pub mod logistic;
pub mod metrics;
pub mod optimize;
pub mod pareto_nbd;
pub mod rfm;
pub mod special;
