//! Activities: the emails, calls, meetings, notes, chats and social touches with a contact.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::{outbox, records};
use crate::values::{ActivityKind, Direction, Patch, Text, WebhookEventType};
use chrono::{DateTime, Utc};
use rapport_schema::{activity, contact, deal, user};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

/// Fields of an activity as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct ActivityInput {
    /// What kind of interaction.
    pub kind: Option<ActivityKind>,
    /// Who started it.
    pub direction: Patch<Direction>,
    /// Subject line or title.
    pub subject: Patch<String>,
    /// Body or notes.
    pub body: Patch<String>,
    /// When it happened; now by default.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The contact it was with.
    pub contact_id: Patch<i64>,
    /// The deal it belongs to.
    pub deal_id: Patch<i64>,
    /// The team member who logged it.
    pub author_id: Patch<i64>,
}

async fn apply(
    db: &impl ConnectionTrait,
    ws: i64,
    am: &mut activity::ActiveModel,
    input: ActivityInput,
) -> Result<()> {
    if let Patch::Set(id) = input.contact_id {
        records::ensure_exists::<contact::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = input.deal_id {
        records::ensure_exists::<deal::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = input.author_id {
        records::ensure_exists::<user::Entity>(db, ws, id).await?;
    }
    if let Some(k) = input.kind {
        am.kind = Set(k.as_str().to_string());
    }
    (input.direction.parse(|d| Ok(d.as_str().to_string()))?).apply(&mut am.direction);
    (input
        .subject
        .parse(|s| Text::parse("subject", &s, 500).map(Text::into_string))?)
    .apply(&mut am.subject);
    (input.body.parse(|b| {
        if b.len() > 1_000_000 {
            Err(EngineError::invalid("body", "must be at most 1 MB"))
        } else {
            Ok(b)
        }
    })?)
    .apply(&mut am.body);
    if let Some(t) = input.occurred_at {
        am.occurred_at = Set(t);
    }
    input.contact_id.apply(&mut am.contact_id);
    input.deal_id.apply(&mut am.deal_id);
    input.author_id.apply(&mut am.author_id);
    am.updated_at = Set(clock::now());
    Ok(())
}

/// Logs an activity.
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: ActivityInput,
) -> Result<activity::Model> {
    if input.kind.is_none() {
        return Err(EngineError::invalid("kind", "is required"));
    }
    let now = clock::now();
    let mut am = activity::ActiveModel {
        workspace_id: Set(who.workspace_id),
        occurred_at: Set(now),
        created_at: Set(now),
        direction: Set(None),
        subject: Set(None),
        body: Set(None),
        contact_id: Set(None),
        deal_id: Set(None),
        author_id: Set(None),
        ..Default::default()
    };
    apply(db, who.workspace_id, &mut am, input).await?;
    let saved = am.insert(db).await?;
    // About a contact, it is ordered with the contact's other events and forgotten with
    // them on erasure.
    let subject = match saved.contact_id {
        Some(id) => outbox::Subject::contact(id),
        None => outbox::Subject {
            typename: "Activity",
            id: saved.id,
        },
    };
    if let Some(contact_id) = saved.contact_id {
        let notice = crate::platform::live::Notice {
            workspace_id: who.workspace_id,
            topic: crate::platform::live::Topic::Activity,
            scope_id: contact_id,
            object_id: saved.id,
        };
        crate::platform::live::publish(db, notice).await?;
    }
    let data = serde_json::json!({ "object": outbox::object("Activity", &saved) });
    outbox::emit(
        db,
        who.workspace_id,
        WebhookEventType::ActivityCreated,
        subject,
        data,
    )
    .await?;
    Ok(saved)
}

/// Changes the given fields of an activity.
pub async fn update(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: ActivityInput,
) -> Result<activity::Model> {
    let mut am: activity::ActiveModel = records::get::<activity::Entity>(db, who.workspace_id, id)
        .await?
        .into();
    apply(db, who.workspace_id, &mut am, input).await?;
    Ok(am.update(db).await?)
}
