//! The webhook outbox: a change worth telling an app is written as an event in the same
//! transaction as the change itself, with one delivery owed to each enabled endpoint of
//! the workspace that subscribed to its type. A change that rolls back takes its event
//! with it; one that commits cannot lose it. Sending is the integrations room's work
//! (`integrations::webhooks`); this module only writes, so every room can call it.
//!
//! Each change is also the audit log's ([`audit::note`]): within a mutation, it is
//! recorded with its caller whether or not an app listens.
//!
//! The object in an event is the row as the API names it: camelCase fields, ids as
//! text, a `__typename`, without the columns only Rapport reads (workspace, hashes).

use chrono::{DateTime, Utc};
use rapport_schema::{webhook_delivery, webhook_endpoint, webhook_event};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock;
use crate::error::Result;
use crate::platform::audit;
use crate::values::WebhookEventType;

/// Columns an event never carries: they are Rapport's own bookkeeping or secrets.
const HIDDEN: &[&str] = &[
    "workspace_id",
    "email_hash",
    "phone_normalized",
    "secret",
    "key_hash",
    "claimed_at",
    "claimed_by",
    "idempotency_key",
];

/// Bytes of one text field an event carries; a longer one (an activity's body, say) is
/// cut there and marked, so one write cannot make a delivery of megabytes. The app reads
/// the whole value from the API.
pub const MAX_TEXT: usize = 4096;

fn cut(text: &str) -> String {
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[cut; read the rest from the API]", &text[..end])
}

/// Fields whose change alone is not worth an event.
const NOISE: &[&str] = &["updatedAt"];

/// What an event is about: a type name as the API spells it and a row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    /// `Contact`, `Deal`, ...
    pub typename: &'static str,
    /// The row.
    pub id: i64,
}

impl Subject {
    /// A contact: the subject of its own events and of those about it (activities,
    /// orders, consent, email), so they keep one order and are forgotten together.
    pub fn contact(id: i64) -> Subject {
        Subject {
            typename: "Contact",
            id,
        }
    }

    /// `Contact:12`: the key deliveries keep their order by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.typename, self.id)
    }
}

/// A row as an event shows it: camelCase keys, ids as text, `__typename` first.
pub fn object(typename: &str, row: &impl Serialize) -> Value {
    let mut out = Map::new();
    out.insert("__typename".into(), Value::String(typename.into()));
    if let Ok(Value::Object(fields)) = serde_json::to_value(row) {
        for (key, value) in fields {
            if HIDDEN.contains(&key.as_str()) {
                continue;
            }
            let is_id = key == "id" || key.ends_with("_id");
            let value = match value {
                Value::Number(n) if is_id => Value::String(n.to_string()),
                Value::String(text) if text.len() > MAX_TEXT => Value::String(cut(&text)),
                other => other,
            };
            out.insert(camel(&key), value);
        }
    }
    Value::Object(out)
}

/// A stored column's name as the API spells it (`expected_close_date` → `expectedCloseDate`).
pub(crate) fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The fields that differ between two objects (as [`object`] made them), and their
/// values before; `updatedAt` alone does not count.
pub fn changes(before: &Value, after: &Value) -> (Vec<String>, Map<String, Value>) {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return (Vec::new(), Map::new());
    };
    let mut changed = Vec::new();
    let mut previous = Map::new();
    for (key, value) in after {
        if NOISE.contains(&key.as_str()) {
            continue;
        }
        let old = before.get(key).unwrap_or(&Value::Null);
        if old != value {
            changed.push(key.clone());
            previous.insert(key.clone(), old.clone());
        }
    }
    (changed, previous)
}

/// Records that `row` was created (or otherwise reported whole).
pub async fn created(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    subject: Subject,
    row: &impl Serialize,
) -> Result<()> {
    let data = json!({ "object": object(subject.typename, row) });
    audit::note(
        db,
        workspace_id,
        event,
        (subject.typename, subject.id),
        audit::Change::Created(&data["object"]),
    )
    .await?;
    send(db, workspace_id, event, subject, data).await
}

/// [`created`] for many rows of one kind written together: the listeners are looked up
/// once, and nothing is built for webhooks when nobody listens.
pub async fn created_many<'a, T: Serialize + 'a>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    rows: impl IntoIterator<Item = (Subject, &'a T)>,
) -> Result<()> {
    let endpoints = listeners(db, workspace_id, event).await?;
    let audited = audit::actor().is_some();
    if endpoints.is_empty() && !audited {
        return Ok(());
    }
    let now = clock::now();
    for (subject, row) in rows {
        let data = json!({ "object": object(subject.typename, row) });
        audit::note(
            db,
            workspace_id,
            event,
            (subject.typename, subject.id),
            audit::Change::Created(&data["object"]),
        )
        .await?;
        if !endpoints.is_empty() {
            emit_to(db, workspace_id, event, subject, data, &endpoints, now).await?;
        }
    }
    Ok(())
}

/// Records that a row changed from `before` to `after`, naming the changed fields and
/// their old values; nothing when no field but `updatedAt` changed.
pub async fn updated(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    subject: Subject,
    before: &impl Serialize,
    after: &impl Serialize,
) -> Result<()> {
    let after = object(subject.typename, after);
    let (changed, previous) = changes(&object(subject.typename, before), &after);
    if changed.is_empty() {
        return Ok(());
    }
    audit::note(
        db,
        workspace_id,
        event,
        (subject.typename, subject.id),
        audit::Change::Updated {
            after: &after,
            previous: &previous,
        },
    )
    .await?;
    let data = json!({ "object": after, "changedFields": changed, "previous": previous });
    send(db, workspace_id, event, subject, data).await
}

/// Writes an event with `data` and a pending delivery for every enabled endpoint of the
/// workspace subscribed to `event`; writes no event when no endpoint listens. Within a
/// mutation, the change goes to the audit log too.
pub async fn emit(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    subject: Subject,
    data: Value,
) -> Result<()> {
    audit::note(
        db,
        workspace_id,
        event,
        (subject.typename, subject.id),
        audit::Change::Other(&data),
    )
    .await?;
    send(db, workspace_id, event, subject, data).await
}

/// The outbox's part of [`emit`]: the event and its deliveries, when anyone listens.
async fn send(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    subject: Subject,
    data: Value,
) -> Result<()> {
    let endpoints = listeners(db, workspace_id, event).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    emit_to(
        db,
        workspace_id,
        event,
        subject,
        data,
        &endpoints,
        clock::now(),
    )
    .await?;
    Ok(())
}

/// The enabled endpoints of a workspace subscribed to `event`: a writer of many events
/// of one kind asks once, and skips building them when nobody listens.
pub async fn listeners(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
) -> Result<Vec<i64>> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter(|e| subscribed(&e.events, event))
        .map(|e| e.id)
        .collect())
}

/// Writes an event for exactly `endpoints` (a test delivery, or a replay); returns it.
pub async fn emit_to(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    subject: Subject,
    data: Value,
    endpoints: &[i64],
    now: DateTime<Utc>,
) -> Result<webhook_event::Model> {
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Ids come from a sequence when a row is written, not when it commits: two
        // transactions about one subject could commit in the other order than their ids.
        // Writers of one subject's events take turns, so id order is commit order.
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("webhook:{workspace_id}:{}", subject.key()).into()],
        ))
        .await?;
    }
    let payload = json!({
        "type": event.as_str(),
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "workspaceId": workspace_id.to_string(),
        "data": data,
    });
    let saved = webhook_event::ActiveModel {
        workspace_id: Set(workspace_id),
        event_type: Set(event.as_str().to_string()),
        subject: Set(subject.key()),
        payload: Set(payload),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let rows = endpoints
        .iter()
        .map(|&endpoint_id| webhook_delivery::ActiveModel {
            workspace_id: Set(workspace_id),
            endpoint_id: Set(endpoint_id),
            event_id: Set(saved.id),
            subject: Set(saved.subject.clone()),
            state: Set("pending".into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            created_at: Set(now),
            ..Default::default()
        });
    webhook_delivery::Entity::insert_many(rows).exec(db).await?;
    Ok(saved)
}

/// Whether an endpoint's stored list of event types holds `event`.
pub fn subscribed(events: &Value, event: WebhookEventType) -> bool {
    events
        .as_array()
        .is_some_and(|list| list.iter().any(|e| e.as_str() == Some(event.as_str())))
}

/// Forgets what the outbox holds about a contact (erasure): the events about them, and
/// those of other subjects whose object names them (a deal's, an activity's) — with them
/// their deliveries and attempts.
pub async fn forget(db: &impl ConnectionTrait, workspace_id: i64, subject: Subject) -> Result<()> {
    use sea_orm::sea_query::{Expr, ExprTrait, Func};
    // Stored JSON reads back as text with a space after each colon on PostgreSQL (jsonb)
    // and without one on SQLite.
    let mention = format!("%\"contactId\":\"{}\"%", subject.id);
    let spaced = format!("%\"contactId\": \"{}\"%", subject.id);
    let text = || {
        Func::cast_as(
            Expr::col(webhook_event::Column::Payload),
            sea_orm::sea_query::Alias::new("TEXT"),
        )
    };
    webhook_event::Entity::delete_many()
        .filter(webhook_event::Column::WorkspaceId.eq(workspace_id))
        .filter(
            sea_orm::Condition::any()
                .add(webhook_event::Column::Subject.eq(subject.key()))
                .add(Expr::expr(text()).like(mention))
                .add(Expr::expr(text()).like(spaced)),
        )
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: i64,
        workspace_id: i64,
        company_id: Option<i64>,
        first_name: String,
        updated_at: String,
    }

    #[test]
    fn objects_speak_the_api() {
        let row = Row {
            id: 7,
            workspace_id: 1,
            company_id: Some(3),
            first_name: "Ada".into(),
            updated_at: "t".into(),
        };
        assert_eq!(
            object("Contact", &row),
            json!({"__typename": "Contact", "id": "7", "companyId": "3", "firstName": "Ada", "updatedAt": "t"})
        );
    }

    #[test]
    fn changes_name_fields_and_old_values_but_not_the_clock() {
        let before = json!({"id": "1", "firstName": "Ada", "updatedAt": "a"});
        let after = json!({"id": "1", "firstName": "Grace", "updatedAt": "b"});
        let (changed, previous) = changes(&before, &after);
        assert_eq!(changed, vec!["firstName".to_string()]);
        assert_eq!(Value::Object(previous), json!({"firstName": "Ada"}));
        let (none, _) = changes(
            &before,
            &json!({"id": "1", "firstName": "Ada", "updatedAt": "c"}),
        );
        assert!(none.is_empty());
    }
}
