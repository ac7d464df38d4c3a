//! Rapport's domain: the CRM graph's rules, independent of how clients reach them.
//!
//! Every operation takes the caller's [`auth::Principal`] and touches only that
//! principal's workspace. Inputs arrive as plain structs and are parsed into the domain
//! values of [`values`] before anything is written; failures are [`error::EngineError`].

pub mod activities;
pub mod analytics;
pub mod audiences;
pub mod auth;
pub mod bounces;
pub mod campaigns;
pub mod clock;
pub mod commerce;
pub mod companies;
pub mod consent;
pub mod contacts;
pub mod db;
pub mod deals;
pub mod demo;
pub mod duplicates;
pub mod email;
pub mod error;
pub mod events;
pub mod health;
pub mod input_limits;
pub mod inquiries;
pub mod jobs;
pub mod links;
pub mod models;
pub mod pagination;
pub mod plugins;
pub mod records;
pub mod sequences;
pub mod suppression;
pub mod tasks;
pub mod team;
pub mod templates;
pub mod timeline;
pub mod values;
pub mod workspaces;

pub use error::{EngineError, Result};
