//! Behavioural events (page views, form submissions, product views) tied to a contact.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use chrono::{DateTime, Utc};
use rapport_schema::{contact, event};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

/// An event as a client reports it.
#[derive(Clone, Debug)]
pub struct EventInput {
    /// Whose behaviour it was.
    pub contact_id: i64,
    /// `page_view`, `form_submitted`, `product_viewed`, or any snake_case name.
    pub event_type: String,
    /// Free-form properties, a JSON object.
    pub properties: serde_json::Value,
    /// When it happened; now by default.
    pub occurred_at: Option<DateTime<Utc>>,
}

fn check_type(raw: &str) -> Result<String> {
    let t = raw.trim();
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if ok {
        Ok(t.to_string())
    } else {
        Err(EngineError::invalid(
            "type",
            format!("'{raw}' must be snake_case (a-z, 0-9, _ and .), such as page_view"),
        ))
    }
}

/// Checks an event's type and properties as [`track`] will, before anything is written:
/// the type in snake_case, the properties a JSON object of at most 64 kB.
pub fn check(event_type: &str, properties: &serde_json::Value) -> Result<String> {
    let event_type = check_type(event_type)?;
    if !(properties.is_object() || properties.is_null()) {
        return Err(EngineError::invalid("properties", "must be a JSON object"));
    }
    if properties.to_string().len() > 64 * 1024 {
        return Err(EngineError::invalid(
            "properties",
            "must be at most 64 kB of JSON",
        ));
    }
    Ok(event_type)
}

/// Records an event.
pub async fn track(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: EventInput,
) -> Result<event::Model> {
    let event_type = check(&input.event_type, &input.properties)?;
    records::ensure_exists::<contact::Entity>(db, who.workspace_id, input.contact_id).await?;
    let properties = if input.properties.is_null() {
        serde_json::json!({})
    } else {
        input.properties
    };
    Ok(event::ActiveModel {
        workspace_id: Set(who.workspace_id),
        contact_id: Set(input.contact_id),
        event_type: Set(event_type),
        properties: Set(properties),
        occurred_at: Set(input.occurred_at.unwrap_or_else(clock::now)),
        ..Default::default()
    }
    .insert(db)
    .await?)
}
