//! Built-in models, each fitted in Rust and tested against published results.

pub mod clv;
pub mod optimize;
pub mod rfm;
pub mod special;
