//! Record ids as GraphQL `ID`s: the decimal row id, as text.

use crate::error::invalid;
use async_graphql::ID;

/// The GraphQL id of a row.
pub fn to_id(id: i64) -> ID {
    ID(id.to_string())
}

/// The row id in a GraphQL id; `field` names the argument in the error.
pub fn parse_id(field: &str, id: &ID) -> async_graphql::Result<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| invalid(field, format!("'{}' is not a valid id", id.as_str())))
}

/// Parses a list of ids.
pub fn parse_ids(field: &str, ids: &[ID]) -> async_graphql::Result<Vec<i64>> {
    ids.iter().map(|i| parse_id(field, i)).collect()
}
