//! Inquiries: questions and requests a customer raised, with their handling state.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{InquiryChannel, InquiryStatus, Patch, Priority, Text};
use chrono::{DateTime, Utc};
use rapport_schema::{contact, inquiry};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

/// Fields of an inquiry as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct InquiryInput {
    /// What it is about.
    pub subject: Option<String>,
    /// How it arrived.
    pub channel: Option<InquiryChannel>,
    /// Progress; open by default. Closing sets `closed_at`.
    pub status: Option<InquiryStatus>,
    /// Urgency; normal by default.
    pub priority: Option<Priority>,
    /// Who asked.
    pub contact_id: Patch<i64>,
    /// When it was opened; now by default.
    pub opened_at: Option<DateTime<Utc>>,
}

async fn apply(
    db: &impl ConnectionTrait,
    ws: i64,
    am: &mut inquiry::ActiveModel,
    input: InquiryInput,
) -> Result<()> {
    if let Patch::Set(id) = input.contact_id {
        records::ensure_exists::<contact::Entity>(db, ws, id).await?;
    }
    if let Some(s) = input.subject {
        am.subject = Set(Text::parse("subject", &s, 500)?.into_string());
    }
    if let Some(c) = input.channel {
        am.channel = Set(c.as_str().to_string());
    }
    if let Some(s) = input.status {
        am.status = Set(s.as_str().to_string());
        am.closed_at = Set(if s == InquiryStatus::Closed {
            Some(clock::now())
        } else {
            None
        });
    }
    if let Some(p) = input.priority {
        am.priority = Set(p.as_str().to_string());
    }
    if let Some(id) = input.contact_id.into_change() {
        am.contact_id = Set(id);
    }
    if let Some(t) = input.opened_at {
        am.opened_at = Set(t);
    }
    am.updated_at = Set(clock::now());
    Ok(())
}

/// Opens an inquiry.
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: InquiryInput,
) -> Result<inquiry::Model> {
    if input.subject.is_none() {
        return Err(EngineError::invalid("subject", "is required"));
    }
    if input.channel.is_none() {
        return Err(EngineError::invalid("channel", "is required"));
    }
    let now = clock::now();
    let mut am = inquiry::ActiveModel {
        workspace_id: Set(who.workspace_id),
        status: Set(InquiryStatus::Open.as_str().to_string()),
        priority: Set(Priority::Normal.as_str().to_string()),
        opened_at: Set(now),
        closed_at: Set(None),
        contact_id: Set(None),
        created_at: Set(now),
        ..Default::default()
    };
    apply(db, who.workspace_id, &mut am, input).await?;
    Ok(am.insert(db).await?)
}

/// Changes the given fields of an inquiry.
pub async fn update(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: InquiryInput,
) -> Result<inquiry::Model> {
    let mut am: inquiry::ActiveModel = records::get::<inquiry::Entity>(db, who.workspace_id, id)
        .await?
        .into();
    apply(db, who.workspace_id, &mut am, input).await?;
    Ok(am.update(db).await?)
}
