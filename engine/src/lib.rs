//! Rapport's domain: the CRM graph's rules, independent of how clients reach them.
//!
//! Every operation takes the caller's [`platform::auth::Principal`] and touches only
//! that principal's workspace. Inputs arrive as plain structs and are parsed into the
//! domain values of [`values`] before anything is written; failures are
//! [`error::EngineError`].
//!
//! The crate is in layers, each of which may use the ones listed before it and never one
//! after it (`engine/tests/layers.rs` checks this on every build of the tests):
//!
//! 1. the vocabulary at the root: [`error`], [`values`], [`clock`], and the bounds on
//!    structured input every parser checks first ([`input_limits`]);
//! 2. [`platform`]: storage, keys, email transport, signed links, the job queue;
//! 3. [`crm`]: the CRM graph — contacts, companies, deals and what hangs off them;
//! 4. [`engagement`]: reaching contacts — consent, filters and segments, templates,
//!    campaigns, sequences, tracking;
//! 5. [`intelligence`]: models, analytics and plugins, which read everything below and
//!    act through engagement;
//! 6. [`integrations`]: outbound webhooks, which send what the other rooms wrote to the
//!    outbox;
//! 7. at the top, the modules that name every feature: [`worker`] (which job runs what),
//!    [`contact_data`] (every store of a contact's data, for erasure and merging),
//!    [`timeline`] (a contact's 360° view) and [`demo`].

pub mod clock;
pub mod error;
pub mod input_limits;
pub mod values;

pub mod platform;

pub mod crm;

pub mod engagement;

pub mod integrations;
pub mod intelligence;

pub mod contact_data;
pub mod demo;
pub mod timeline;
pub mod worker;

pub use error::{EngineError, Result};
