//! Segments: named, saved contact filters — the audiences campaigns send to and
//! sequences enroll from. The filter is stored in the API's filter language and evaluated
//! each time the segment is used, so a segment is never stale.
//!
//! The engine keeps the definition; checking that the filter is well-formed is the API's,
//! where the filter language lives.

use rapport_schema::segment;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

use crate::clock;
use crate::error::Result;
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{Patch, Scope, Text};

/// A segment as a client writes it.
#[derive(Clone, Debug, Default)]
pub struct SegmentInput {
    /// Its name.
    pub name: Option<String>,
    /// What it is for.
    pub description: Patch<String>,
    /// The filter, already checked by the caller.
    pub filter: Option<serde_json::Value>,
}

/// Creates a segment (write scope).
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: SegmentInput,
) -> Result<segment::Model> {
    who.require(Scope::Write)?;
    let name = Text::parse("name", input.name.as_deref().unwrap_or_default(), 200)?;
    let description = match input.description {
        Patch::Set(d) => Some(Text::parse_multiline("description", &d, 2000)?.into_string()),
        Patch::Keep | Patch::Clear => None,
    };
    let now = clock::now();
    Ok(segment::ActiveModel {
        workspace_id: Set(who.workspace_id),
        name: Set(name.into_string()),
        description: Set(description),
        filter: Set(input.filter.unwrap_or_else(|| serde_json::json!({}))),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Changes a segment's name, description or filter (write scope).
pub async fn update(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: SegmentInput,
) -> Result<segment::Model> {
    who.require(Scope::Write)?;
    let current = records::get::<segment::Entity>(db, who.workspace_id, id).await?;
    let mut row: segment::ActiveModel = current.into();
    if let Some(name) = input.name {
        row.name = Set(Text::parse("name", &name, 200)?.into_string());
    }
    match input.description {
        Patch::Keep => {}
        Patch::Clear => row.description = Set(None),
        Patch::Set(d) => {
            row.description = Set(Some(
                Text::parse_multiline("description", &d, 2000)?.into_string(),
            ))
        }
    }
    if let Some(filter) = input.filter {
        row.filter = Set(filter);
    }
    row.updated_at = Set(clock::now());
    Ok(row.update(db).await?)
}
