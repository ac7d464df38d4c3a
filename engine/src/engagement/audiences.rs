//! Segments: named, saved contact filters — the audiences campaigns send to and
//! sequences enroll from. The filter is stored in its JSON form
//! ([`crate::crm::filters`]), checked when it is saved and again each time the segment is
//! used, and evaluated then, so a segment is never stale.

use chrono::{DateTime, Utc};
use rapport_schema::segment;
use sea_orm::{ActiveModelTrait, Condition, ConnectionTrait, Set};

use crate::clock;
use crate::crm::filters::{ContactFilter, Evaluation, Filter};
use crate::error::{EngineError, Result};
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
    /// Which contacts belong, in the filter language's JSON form.
    pub filter: Option<serde_json::Value>,
}

/// Reads and compiles a filter about to be saved, so a filter that cannot run is refused
/// before it is stored.
fn checked(workspace_id: i64, filter: serde_json::Value) -> Result<serde_json::Value> {
    ContactFilter::parse("filter", &filter)?
        .condition(Evaluation::new(workspace_id, clock::now()))?;
    Ok(filter)
}

/// The contacts `segment` holds at `now`, as a condition on contacts.
///
/// The saved filter is read as if it had just been sent: one written by an older version
/// that no longer parses, or that lies beyond today's bounds, is a `VALIDATION` error
/// naming the segment, never a crash of the worker that reads it.
pub fn members(segment: &segment::Model, now: DateTime<Utc>) -> Result<Condition> {
    ContactFilter::parse("segment.filter", &segment.filter)
        .and_then(|f| f.condition(Evaluation::new(segment.workspace_id, now)))
        .map_err(|e| match e {
            EngineError::Validation { field, message } => EngineError::invalid(
                field,
                format!(
                    "the saved filter of segment {} no longer parses: {message}",
                    segment.id
                ),
            ),
            other => other,
        })
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
        filter: Set(match input.filter {
            Some(f) => checked(who.workspace_id, f)?,
            None => return Err(EngineError::invalid("filter", "a segment needs a filter")),
        }),
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
        row.filter = Set(checked(who.workspace_id, filter)?);
    }
    row.updated_at = Set(clock::now());
    Ok(row.update(db).await?)
}
