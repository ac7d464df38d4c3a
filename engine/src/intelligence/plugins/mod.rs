//! WebAssembly plugins in a workspace: registering versions, running them over contacts,
//! and the actions they recommend.
//!
//! The sandbox itself is `rapport-plugins`; this module decides what runs, feeds it, and
//! keeps what comes out. A plugin's input is a GraphQL query against Rapport's own schema,
//! which belongs to the API, so the API provides [`Inputs`].

pub mod actions;
pub mod backtest;
pub mod call_records;
pub mod distribution;
pub mod hooks;
pub mod record_scores;
pub mod registry;
pub mod rules;
pub mod runs;
pub mod shadow;
pub mod steps;

use std::sync::Arc;

pub use crate::values::PluginSubject as Subject;
use futures_util::future::BoxFuture;
pub use rapport_plugins::{Limits, Reason, Runtime};

use crate::error::{EngineError, Result};

/// Runs plugins' input queries. Implemented by the API, which owns the GraphQL schema.
pub trait Inputs: Send + Sync {
    /// Checks that `query` can serve as an input query (a read-only query with one id
    /// variable, `$contactId`, `$dealId` or `$companyId`, and `$asOf` if it likes) and
    /// returns its cost (the schema's complexity) and the subject its id names.
    fn check<'a>(&'a self, workspace_id: i64, query: &'a str) -> BoxFuture<'a, Result<Checked>>;

    /// Whether `query` declares `$asOf`, so that run as of a past moment it can read only
    /// what was known then.
    fn reads_as_of(&self, query: &str) -> bool;

    /// Runs `query` for each of `contacts` (the ids of its subject: contacts, deals or
    /// companies) in the workspace, batched, and gives each one's `data` as JSON text, or
    /// why it could not be fetched, in the same order.
    /// `as_of` is the moment scored as of, the query's `$asOf` when it declares one.
    fn fetch<'a>(
        &'a self,
        workspace_id: i64,
        query: &'a str,
        cost: i32,
        contacts: &'a [i64],
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<Vec<std::result::Result<String, String>>>>;
}

/// An input query that passed [`Inputs::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The query's cost for one record (the schema's complexity).
    pub cost: i32,
    /// What the query is about.
    pub subject: Subject,
}

/// The subject a stored version scores (`contact` for rows older than subjects).
pub fn subject_of(v: &rapport_schema::plugin_version::Model) -> Subject {
    Subject::parse(&v.subject).unwrap_or_default()
}

/// What running plugins needs: the sandbox and the input queries.
#[derive(Clone)]
pub struct Host {
    /// The wasmtime host, shared by every plugin.
    pub runtime: Runtime,
    /// Input queries.
    pub inputs: Arc<dyn Inputs>,
    /// Which calls are recorded as runs.
    pub capture: call_records::Capture,
    /// The workspaces with a backtest running (one at a time each).
    pub backtests: backtest::Running,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plugins::Host")
    }
}

/// A plugin's name: 1–64 characters of lowercase letters, digits, `-` and `_`,
/// starting with a letter, so it reads well in score lists and URLs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginName(String);

impl PluginName {
    /// Parses a plugin name.
    pub fn parse(s: &str) -> Result<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(PluginName(s.to_string()))
        } else {
            Err(EngineError::invalid(
                "name",
                "use 1–64 lowercase letters, digits, '-' or '_', starting with a letter",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plugin failure as clients see it: the plugin named, then what went wrong.
pub(crate) fn plugin_error(field: &str, name: &str, e: &rapport_plugins::Error) -> EngineError {
    EngineError::invalid(field, format!("plugin {name} {e}"))
}

/// Runs a plugin call on the blocking pool: calls are CPU-bound and bounded by their limits.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "plugin call panicked");
        EngineError::internal("the plugin host failed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subjects_round_trip_through_their_names_and_variables() {
        for s in Subject::ALL {
            assert_eq!(Subject::parse(s.as_str()).unwrap(), s);
            assert_eq!(Subject::of_variable(s.variable()), Some(s));
        }
        assert!(Subject::parse("lead").is_err());
        assert_eq!(Subject::of_variable("asOf"), None);
    }

    #[test]
    fn names() {
        assert!(PluginName::parse("engagement-score").is_ok());
        assert!(PluginName::parse("nba_v2").is_ok());
        for bad in ["", "Score", "1st", "has space", "ünï", &"x".repeat(65)] {
            assert!(PluginName::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsed_names_keep_their_text(s in "[a-z][a-z0-9_-]{0,63}") {
            let parsed = PluginName::parse(&s).unwrap();
            prop_assert_eq!(parsed.as_str(), s.as_str());
        }

        #[test]
        fn names_with_other_characters_are_refused(s in "[a-z]{0,5}[A-Z .!/]{1,3}[a-z]{0,5}") {
            prop_assert!(PluginName::parse(&s).is_err());
        }
    }
}
