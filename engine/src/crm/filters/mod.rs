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

use chrono::{DateTime, Utc};
use sea_orm::Condition;
use serde::de::DeserializeOwned;

/// Declares the filter of one kind of record: its column conditions, any extra ones
/// compiled by a function of its own, and `and`/`or`/`not`.
macro_rules! record_filter {
    (
        $(#[$doc:meta])* $name:ident, $module:ident {
            $($field:ident : $ty:ty => $col:ident),* $(,)?
        }
        $(, extra { $($(#[$xdoc:meta])* $xfield:ident : $xty:ty),* $(,)? } => $xfn:ident)?
    ) => {
        $(#[$doc])*
        #[derive(Deserialize, Clone, Debug, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $(
                #[allow(missing_docs)]
                pub $field: Option<$ty>,
            )*
            $($(
                $(#[$xdoc])*
                pub $xfield: Option<$xty>,
            )*)?
            /// Every one of these filters matches.
            pub and: Option<Vec<$name>>,
            /// At least one of these filters matches.
            pub or: Option<Vec<$name>>,
            /// This filter does not match.
            pub not: Option<Box<$name>>,
        }

        impl Filter for $name {
            fn condition(&self, at: Evaluation) -> Result<Condition> {
                self.condition_at(at, 0)
            }
        }

        impl $name {
            /// The condition of this node, `depth` levels down the tree.
            pub(super) fn condition_at(&self, at: Evaluation, depth: usize) -> Result<Condition> {
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
                let mut all = Condition::all();
                $(
                    if let Some(f) = &self.$field {
                        all = all.add(f.condition(Expr::col(s::$module::Column::$col.as_column_ref())));
                    }
                )*
                $( all = all.add($xfn(self, at, depth)?); )?
                for f in self.and.iter().flatten() {
                    all = all.add(f.condition_at(at, depth + 1)?);
                }
                if let Some(list) = &self.or {
                    let mut any = Condition::any();
                    for f in list {
                        any = any.add(f.condition_at(at, depth + 1)?);
                    }
                    all = all.add(any);
                }
                if let Some(f) = &self.not {
                    all = all.add(f.condition_at(at, depth + 1)?.not());
                }
                Ok(all)
            }
        }
    };
}

mod attributes;
mod behaviour;
mod contacts;
mod records;
mod scalars;

pub use attributes::*;
pub use behaviour::*;
pub use contacts::*;
pub use records::*;
pub use scalars::*;

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

    /// The SQL condition of the whole tree, over the rows of one workspace at one moment.
    fn condition(&self, at: Evaluation) -> Result<Condition>;
}

/// Where and when a filter is evaluated: the workspace whose rows it reads (a condition on
/// related records, such as a contact's company or orders, sees only that workspace's),
/// and the moment `withinDays` counts back from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Evaluation {
    /// The workspace.
    pub workspace_id: i64,
    /// Now, for the filter.
    pub now: DateTime<Utc>,
}

impl Evaluation {
    /// The workspace's rows as of `now`.
    pub fn new(workspace_id: i64, now: DateTime<Utc>) -> Self {
        Evaluation { workspace_id, now }
    }
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
