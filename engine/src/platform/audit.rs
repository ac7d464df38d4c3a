//! The audit log: who changed what, when and from where.
//!
//! A request that may change something runs [`within`] a trail that knows its caller (API
//! key or console user, IP, user agent); the API names the mutation being resolved
//! ([`begin`]). Every change a room reports to the webhook outbox is then also written
//! here — in the same transaction as the change, so a change that rolls back leaves no
//! row and one that commits cannot lose it — with the object's type and id and its
//! fields' old and new values. A mutation no room reports (a segment saved, a key
//! created) gets one row from the API with its arguments ([`record`]), and so does every
//! sign-in attempt on a known account.
//!
//! Rows are only appended; [`prune`] drops them after the retention, and [`erase`] takes a
//! person's values out of the rows about them and keeps the rows, so the log still shows
//! that something happened, and that the person was erased.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rapport_schema::audit_event;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value, json};

use crate::clock;
use crate::error::Result;
use crate::platform::health::{self, Health};
use crate::values::WebhookEventType;

/// Who is acting and from where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    /// The API key, when a key is the caller.
    pub api_key_id: Option<i64>,
    /// The console user, when a person is.
    pub user_id: Option<i64>,
    /// The client's address (a trusted proxy's client, behind one).
    pub ip: Option<String>,
    /// The client's `User-Agent`, cut at [`MAX_USER_AGENT`] characters.
    pub user_agent: Option<String>,
}

/// Characters of a user agent kept; clients send what they like.
pub const MAX_USER_AGENT: usize = 256;

impl Actor {
    /// An actor from a request's address and user agent (cut to size).
    pub fn from_request(ip: Option<String>, user_agent: Option<&str>) -> Self {
        Actor {
            api_key_id: None,
            user_id: None,
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT).collect()),
        }
    }
}

#[derive(Debug, Default)]
struct Trail {
    actor: Actor,
    /// The mutation being resolved: changes are recorded only while one is.
    operation: Option<String>,
    /// Rows written for it so far.
    noted: u32,
    /// Mutations the request has run.
    mutations: u32,
}

tokio::task_local! {
    static TRAIL: Mutex<Trail>;
}

fn with_trail<T>(f: impl FnOnce(&mut Trail) -> T) -> Option<T> {
    TRAIL
        .try_with(|t| f(&mut t.lock().unwrap_or_else(|e| e.into_inner())))
        .ok()
}

/// Runs `work` (a request) with a trail for `actor`: changes reported inside it while a
/// mutation is named are recorded.
pub async fn within<F: Future>(actor: Actor, work: F) -> F::Output {
    TRAIL
        .scope(
            Mutex::new(Trail {
                actor,
                ..Trail::default()
            }),
            work,
        )
        .await
}

/// The current task's trail (its caller and the mutation being resolved), for a task it
/// spawns to record its changes under ([`carry_into`]).
#[derive(Clone, Debug)]
pub struct Carried {
    actor: Actor,
    operation: Option<String>,
}

/// What [`carry_into`] needs to go on with the current trail in another task; `None`
/// outside a trail.
pub fn carried() -> Option<Carried> {
    with_trail(|t| Carried {
        actor: t.actor.clone(),
        operation: t.operation.clone(),
    })
}

/// Runs `work` (spawned by a task that had a trail) with that trail's caller and
/// mutation, so what it changes is recorded as the spawning task's would be.
pub async fn carry_into<F: Future>(carried: Option<Carried>, work: F) -> F::Output {
    match carried {
        None => work.await,
        Some(c) => {
            TRAIL
                .scope(
                    Mutex::new(Trail {
                        actor: c.actor,
                        operation: c.operation,
                        ..Trail::default()
                    }),
                    work,
                )
                .await
        }
    }
}

/// Names the caller once the request was authenticated.
pub fn identify(api_key_id: Option<i64>, user_id: Option<i64>) {
    with_trail(|t| {
        t.actor.api_key_id = api_key_id;
        t.actor.user_id = user_id;
    });
}

/// The caller of the current request, if it runs within a trail.
pub fn actor() -> Option<Actor> {
    with_trail(|t| t.actor.clone())
}

/// Starts recording the changes of mutation `operation`; how many mutations the request
/// has begun, this one included (0 outside a request).
pub fn begin(operation: &str) -> u32 {
    with_trail(|t| {
        t.operation = Some(operation.to_string());
        t.noted = 0;
        t.mutations += 1;
        t.mutations
    })
    .unwrap_or(0)
}

/// Stops recording; the number of rows written since [`begin`].
pub fn end() -> u32 {
    with_trail(|t| {
        t.operation = None;
        std::mem::take(&mut t.noted)
    })
    .unwrap_or(0)
}

/// A row to append.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// The mutation's root field, or `signIn`.
    pub operation: String,
    /// The event type of the change, when one describes it.
    pub action: Option<String>,
    /// The object's GraphQL type name.
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<String>,
    /// `Contact:<id>` when the row holds a person's values (erasure clears them).
    pub subject: Option<String>,
    /// What changed.
    pub changes: Option<Value>,
    /// `ok`, an error code, or a sign-in's outcome.
    pub outcome: String,
}

/// Appends `entry` for `actor`.
pub async fn record(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    actor: &Actor,
    entry: Entry,
) -> Result<()> {
    audit_event::ActiveModel {
        workspace_id: Set(workspace_id),
        at: Set(clock::now()),
        api_key_id: Set(actor.api_key_id),
        user_id: Set(actor.user_id),
        ip: Set(actor.ip.clone()),
        user_agent: Set(actor.user_agent.clone()),
        operation: Set(entry.operation),
        action: Set(entry.action),
        object_type: Set(entry.object_type),
        object_id: Set(entry.object_id),
        subject: Set(entry.subject),
        changes: Set(entry.changes),
        outcome: Set(entry.outcome),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// What the outbox was told, as a change: `updated` rows carry old and new values.
pub enum Change<'a> {
    /// A new object (its fields are the new values).
    Created(&'a Value),
    /// Fields that changed, with the object after and the values before.
    Updated {
        /// The object as it is now.
        after: &'a Value,
        /// The changed fields' values before.
        previous: &'a Map<String, Value>,
    },
    /// Anything else: the event's data as the webhook carries it.
    Other(&'a Value),
}

/// Records a change reported to the outbox, in the caller's transaction, when a mutation
/// of a request with a trail is being resolved; nothing otherwise (a job, the CLI). The
/// subject is the outbox's: a type name and an id.
pub async fn note(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    event: WebhookEventType,
    (typename, id): (&str, i64),
    change: Change<'_>,
) -> Result<()> {
    let Some((actor, Some(operation))) = with_trail(|t| (t.actor.clone(), t.operation.clone()))
    else {
        return Ok(());
    };
    let object = match &change {
        Change::Created(o) => Some(*o),
        Change::Updated { after, .. } => Some(*after),
        Change::Other(data) => data.get("object"),
    };
    let text = |key: &str| {
        object
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let changes = match change {
        Change::Created(o) => values_of(o, |v| json!({ "new": v })),
        Change::Updated { after, previous } => {
            let mut out = Map::new();
            for (field, old) in previous {
                let new = after.get(field).cloned().unwrap_or(Value::Null);
                out.insert(field.clone(), json!({ "old": old, "new": new }));
            }
            Value::Object(out)
        }
        Change::Other(data) => data.clone(),
    };
    record(
        db,
        workspace_id,
        &actor,
        Entry {
            operation,
            action: Some(event.as_str().to_string()),
            object_type: text("__typename").or_else(|| Some(typename.to_string())),
            object_id: text("id").or_else(|| Some(id.to_string())),
            subject: person(typename, id),
            changes: Some(changes),
            outcome: "ok".into(),
        },
    )
    .await?;
    with_trail(|t| t.noted += 1);
    Ok(())
}

/// The key of the person a subject is, when it is one: `Contact:<id>`.
pub fn person(typename: &str, id: i64) -> Option<String> {
    (typename == "Contact").then(|| format!("Contact:{id}"))
}

/// The fields of an object with a value, each wrapped by `wrap`.
fn values_of(object: &Value, wrap: impl Fn(&Value) -> Value) -> Value {
    let mut out = Map::new();
    if let Some(fields) = object.as_object() {
        for (key, value) in fields {
            if key == "__typename" || key == "id" || value.is_null() {
                continue;
            }
            out.insert(key.clone(), wrap(value));
        }
    }
    Value::Object(out)
}

/// Takes the personal values out of the rows about `people` (erasure): their changes go,
/// the rows stay.
pub async fn erase(db: &impl ConnectionTrait, workspace_id: i64, people: &[i64]) -> Result<()> {
    let subjects: Vec<String> = people
        .iter()
        .filter_map(|&p| person("Contact", p))
        .collect();
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::Changes,
            sea_orm::sea_query::Expr::value(None::<Value>),
        )
        .filter(audit_event::Column::WorkspaceId.eq(workspace_id))
        .filter(audit_event::Column::Subject.is_in(subjects))
        .exec(db)
        .await?;
    Ok(())
}

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Rows of this mutation (`updateContact`, `signIn`).
    pub operation: Option<String>,
    /// About objects of this type.
    pub object_type: Option<String>,
    /// About this object (with its type).
    pub object_id: Option<String>,
    /// By this API key.
    pub api_key_id: Option<i64>,
    /// By this user.
    pub user_id: Option<i64>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// Rows one page holds at most.
pub const MAX_PAGE: u64 = 200;

/// A workspace's rows matching `filter`, newest first: `first` of those older than
/// `before` (a row id).
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    filter: &Filter,
    before: Option<i64>,
    first: u64,
) -> Result<Vec<audit_event::Model>> {
    use audit_event::Column as C;
    let mut q = audit_event::Entity::find().filter(C::WorkspaceId.eq(workspace_id));
    if let Some(v) = &filter.operation {
        q = q.filter(C::Operation.eq(v.as_str()));
    }
    if let Some(v) = &filter.object_type {
        q = q.filter(C::ObjectType.eq(v.as_str()));
    }
    if let Some(v) = &filter.object_id {
        q = q.filter(C::ObjectId.eq(v.as_str()));
    }
    if let Some(v) = filter.api_key_id {
        q = q.filter(C::ApiKeyId.eq(v));
    }
    if let Some(v) = filter.user_id {
        q = q.filter(C::UserId.eq(v));
    }
    if let Some(v) = filter.since {
        q = q.filter(C::At.gte(v));
    }
    if let Some(v) = filter.until {
        q = q.filter(C::At.lt(v));
    }
    if let Some(b) = before {
        q = q.filter(C::Id.lt(b));
    }
    Ok(q.order_by_desc(C::Id)
        .limit(first.min(MAX_PAGE))
        .all(db)
        .await?)
}

/// Deletes the rows older than `retention`; how many went.
pub async fn prune(db: &impl ConnectionTrait, retention: chrono::Duration) -> Result<u64> {
    Ok(audit_event::Entity::delete_many()
        .filter(audit_event::Column::At.lt(clock::now() - retention))
        .exec(db)
        .await?
        .rows_affected)
}

/// How long rows are kept, by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

/// Prunes the log every hour until `shutdown` resolves; a failed pass is logged and
/// reported to `health`, and the next one runs as usual.
pub async fn run_pruner(
    db: DatabaseConnection,
    retention: chrono::Duration,
    health: std::sync::Arc<Health>,
    shutdown: impl Future<Output = ()>,
) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    health::periodic("audit log pruner", EVERY, health, shutdown, || {
        prune(&db, retention)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trail_records_only_while_a_mutation_is_named() {
        assert_eq!(actor(), None, "no trail outside a request");
        let caller = Actor::from_request(Some("203.0.113.9".into()), Some(&"x".repeat(1000)));
        within(caller, async {
            identify(Some(4), None);
            let seen = actor().unwrap();
            assert_eq!(seen.api_key_id, Some(4));
            assert_eq!(seen.user_agent.unwrap().len(), MAX_USER_AGENT);
            assert!(with_trail(|t| t.operation.clone()).unwrap().is_none());
            assert_eq!(begin("updateContact"), 1);
            with_trail(|t| t.noted += 2);
            assert_eq!(end(), 2);
            assert_eq!(end(), 0);
        })
        .await;
    }

    #[test]
    fn created_objects_list_their_values_as_new() {
        let object = json!({"__typename": "Contact", "id": "3", "email": "a@b.c", "phone": null});
        assert_eq!(
            values_of(&object, |v| json!({ "new": v })),
            json!({"email": {"new": "a@b.c"}})
        );
    }
}
