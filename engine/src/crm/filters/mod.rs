//! The filter language: which records a list, a segment, a campaign audience or a
//! sequence trigger means.
//!
//! A filter is a JSON tree in the shape of the GraphQL API's `XFilter` inputs — fields in
//! camelCase carrying operators (`eq ne in notIn contains startsWith gt gte lt lte
//! isNull`), composed with `and`, `or` and `not` — which is also how segments store it.
//! [`Filter::parse`] measures the tree against [`Bounds::FILTER`] before anything
//! recurses over it, then reads it into the typed tree of this module (unknown fields,
//! ill-typed values, bad ids and attribute names are `VALIDATION` errors naming the path,
//! such as `filter.and[0].email.eq`). [`Filter::condition`] compiles a parsed tree into
//! a SQL condition over one workspace's rows.
//!
//! Semantics, the same on SQLite and PostgreSQL: `ne` and `notIn` also match rows where
//! the field is null; `contains` and `startsWith` ignore ASCII case; text compares
//! bytewise.
//!
//! The parsed tree is the one place conditions are built, whether a filter comes with a
//! query, is saved as a segment, or is read back from one to send a campaign.

mod records;
mod scalars;

pub use records::*;
pub use scalars::*;

use sea_orm::Condition;
use serde::de::DeserializeOwned;

use crate::error::{EngineError, Result};
use crate::input_limits::Bounds;

/// A filter over one kind of record.
pub trait Filter: DeserializeOwned {
    /// Reads a filter from its JSON form, measured first. `field` names the input in
    /// errors (`filter`, `segment.filter`).
    fn parse(field: &str, json: &serde_json::Value) -> Result<Self> {
        Bounds::FILTER.check(field, json)?;
        serde_path_to_error::deserialize(json).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            EngineError::invalid(at, e.into_inner().to_string())
        })
    }

    /// The SQL condition of the whole tree, over the rows of `workspace_id`.
    fn condition(&self, workspace_id: i64) -> Result<Condition>;
}

/// Nesting deeper than this is refused while compiling, so a tree built in code rather
/// than parsed cannot recurse without a bound either.
const MAX_DEPTH: usize = Bounds::FILTER.depth;

fn too_deep() -> EngineError {
    EngineError::invalid(
        "filter",
        format!("nests more than {MAX_DEPTH} levels of and/or/not"),
    )
}
