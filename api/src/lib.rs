//! Rapport's API: the GraphQL schema over the engine, the HTTP server, and the
//! `rapport` command line.

pub mod capture;
pub mod console;
pub mod cors;
pub mod downloads;
pub mod error;
pub mod graphql;
pub mod graphql_http;
pub mod http;
pub mod idempotency;
pub mod keys;
pub mod links;
pub mod metrics;
pub mod plans;
pub mod rate_limit;
pub mod request_id;
pub mod request_limits;
pub mod response_order;
pub mod server;
pub mod sessions;
pub mod subscriptions;
pub mod webhooks;
pub mod workers;
