//! What every feature stands on and none of them owns: the database and its migrations,
//! workspace-scoped records, keyset pagination, API keys, console accounts and sessions, the audit log, the email transport, signed
//! links, live notices for subscriptions, the webhook outbox, process metrics, the job queue, periodic work shared by processes and the health of background loops.
//!
//! May use: the root vocabulary (`error`, `values`, `clock`, `input_limits`). Knows no feature: the queue
//! carries [`queue::Job`]s (ids only) and runs them with a handler it is given.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod db;
pub mod email;
pub mod health;
pub mod idempotency;
pub mod links;
pub mod live;
pub mod metrics;
pub mod outbox;
pub mod pagination;
pub mod periodic;
pub mod queue;
pub mod records;
