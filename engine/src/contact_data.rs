//! Every store of a contact's data, in one list: what the right to erasure deletes, what a
//! merge moves to the surviving contact, and what a data-subject access request exports.
//!
//! A contact's data is spread over the rooms that keep it — the CRM's activities and
//! orders, engagement's messages and enrollments, intelligence's scores and plugin
//! actions. Each room erases and moves its own rows; this module, above all of them, calls
//! each in one transaction, and [`STORES`] names every table that points at a contact, so
//! a new one cannot be forgotten: a test compares it with the migrated schema.

use rapport_schema::contact;
use sea_orm::DatabaseConnection;

use crate::crm::{contacts, duplicates};
use crate::engagement::{sequences, suppression};
use crate::error::Result;
use crate::intelligence::{analytics, plugins};
use crate::platform::auth::Principal;
use crate::platform::{audit, db, outbox};
use crate::values::{EmailAddress, SuppressionReason, WebhookEventType};

/// What erasing a contact does to a store's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnErase {
    /// Deleted.
    Delete,
    /// Kept, with the link to the contact cleared (the business's own records).
    Unlink,
}

/// What merging a contact into another does to a store's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMerge {
    /// Repointed to the survivor.
    Move,
    /// Left with the merged contact, which stays (soft-deleted) as its history.
    Stay,
    /// Rows the survivor already has win; the rest move.
    MoveUnlessSurvivorHas,
    /// Ended (enrollments exit with "merged into").
    End,
}

/// A table that holds rows about one contact.
#[derive(Clone, Copy, Debug)]
pub struct Store {
    /// The table.
    pub table: &'static str,
    /// Its column naming the contact.
    pub column: &'static str,
    /// On erasure.
    pub on_erase: OnErase,
    /// On merge.
    pub on_merge: OnMerge,
}

const fn store(table: &'static str, on_erase: OnErase, on_merge: OnMerge) -> Store {
    Store {
        table,
        column: "contact_id",
        on_erase,
        on_merge,
    }
}

/// Every table with a column that names a contact, and what happens to its rows.
pub const STORES: &[Store] = &[
    // The CRM graph.
    store("contact_tags", OnErase::Delete, OnMerge::Move),
    store("deals", OnErase::Unlink, OnMerge::Move),
    store("activities", OnErase::Delete, OnMerge::Move),
    store("tasks", OnErase::Delete, OnMerge::Move),
    store("inquiries", OnErase::Delete, OnMerge::Move),
    store("orders", OnErase::Delete, OnMerge::Move),
    store("events", OnErase::Delete, OnMerge::Move),
    // Copies of attributes: the survivor's are rewritten from its merged attributes.
    store("contact_field_values", OnErase::Delete, OnMerge::Stay),
    Store {
        table: "contact_merges",
        column: "survivor_id",
        on_erase: OnErase::Delete,
        on_merge: OnMerge::Move,
    },
    Store {
        table: "contact_merges",
        column: "merged_id",
        on_erase: OnErase::Delete,
        on_merge: OnMerge::Stay,
    },
    Store {
        table: "contacts",
        column: "merged_into_id",
        on_erase: OnErase::Delete,
        on_merge: OnMerge::Move,
    },
    // Engagement.
    store("consent_events", OnErase::Delete, OnMerge::Stay),
    store("topic_preferences", OnErase::Delete, OnMerge::Stay),
    store("campaign_messages", OnErase::Delete, OnMerge::Stay),
    store("sequence_enrollments", OnErase::Delete, OnMerge::End),
    store("sequence_messages", OnErase::Delete, OnMerge::Move),
    store("transactional_messages", OnErase::Delete, OnMerge::Stay),
    store("lifecycle_changes", OnErase::Delete, OnMerge::Move),
    // Intelligence.
    store(
        "plugin_scores",
        OnErase::Delete,
        OnMerge::MoveUnlessSurvivorHas,
    ),
    store("plugin_score_history", OnErase::Delete, OnMerge::Move),
    // A shadow score is never shown: a merged contact's stays behind, and the survivor
    // gets its own at the next run.
    store("plugin_shadow_scores", OnErase::Delete, OnMerge::Stay),
    // A merged contact's insights stay behind and go at the next full rescoring; the
    // survivor's are recomputed from the orders it absorbed.
    store("contact_insights", OnErase::Delete, OnMerge::Stay),
    store("insight_changes", OnErase::Delete, OnMerge::Stay),
    store("plugin_actions", OnErase::Delete, OnMerge::Move),
    // A recorded plugin call's input is the contact's data as the plugin saw it.
    store("plugin_runs", OnErase::Delete, OnMerge::Move),
];

/// Deletes a contact and everything personal attached to it, for good (right to
/// erasure), in one transaction: every store of [`STORES`], and the contacts earlier
/// merged into it, which were the same person. Built-in scores (keyed by subject, not by
/// a contact column) go too. The addresses stay suppressed, as hashes only: the person
/// asked to be forgotten, not to be mailed again after a re-import.
pub async fn erase(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<()> {
    let ws = who.workspace_id;
    let tx = db::write(db).await?;
    let people = contacts::erasure_set(&tx, ws, id).await?;
    contacts::lock_for_erasure(&tx, &people).await?;
    analytics::registry::erase_contact_scores(&tx, &people).await?;
    analytics::insights::erase(&tx, &people).await?;
    plugins::runs::erase_contacts(&tx, &people).await?;
    let addresses = contacts::addresses_of(&tx, &people).await?;
    // Other contacts' recorded plugin inputs can hold the person too.
    plugins::call_records::forget_mentions(&tx, ws, &addresses).await?;
    sequences::erase_contacts(&tx, &people).await?;
    for raw in addresses {
        if let Ok(address) = EmailAddress::parse("email", &raw) {
            let hash = suppression::email_hash(&address);
            suppression::add(&tx, ws, &hash, SuppressionReason::Erased, None).await?;
        }
    }
    // Last: consent history, campaign and transactional messages go with the contact rows
    // (the database cascades them), deals are unlinked.
    contacts::erase_for_good(&tx, ws, &people).await?;
    // The audit log keeps its rows about them, without their values.
    audit::erase(&tx, ws, &people).await?;
    // Events not yet delivered carried the person's data: they go, and the apps hear only
    // that the contact is gone.
    for &person in &people {
        let subject = outbox::Subject::contact(person);
        outbox::forget(&tx, ws, subject).await?;
        let data = serde_json::json!({
            "object": { "__typename": "Contact", "id": person.to_string() },
            "erased": true,
        });
        outbox::emit(&tx, ws, WebhookEventType::ContactDeleted, subject, data).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Merges `merged` contacts into `survivor` in one transaction: the CRM's rows move and
/// the survivor absorbs the others' fields (see [`duplicates::merge`]), then every other
/// room's rows follow as [`STORES`] says.
pub async fn merge(
    db: &DatabaseConnection,
    who: &Principal,
    survivor_id: i64,
    merged: &[i64],
) -> Result<contact::Model> {
    let tx = db::write(db).await?;
    let (survivor, merged) = duplicates::merge(&tx, who, survivor_id, merged).await?;
    for &from in &merged {
        plugins::runs::merge_contacts(&tx, from, survivor_id).await?;
        sequences::merge_contacts(&tx, from, survivor_id).await?;
    }
    let data = serde_json::json!({
        "object": outbox::object("Contact", &survivor),
        "mergedIds": merged.iter().map(i64::to_string).collect::<Vec<_>>(),
    });
    let subject = outbox::Subject::contact(survivor_id);
    outbox::emit(
        &tx,
        who.workspace_id,
        WebhookEventType::ContactMerged,
        subject,
        data,
    )
    .await?;
    tx.commit().await?;
    Ok(survivor)
}

/// Rows one store may give an export; a person with more is refused with a clear error
/// rather than answered in part.
pub const MAX_EXPORT_ROWS: u64 = 100_000;

/// Everything Rapport holds about a contact, as JSON, for a data-subject access request:
/// the contact (and the contacts earlier merged into it, the same person), every row of
/// every store of [`STORES`] that names them, their built-in scores and score history,
/// the webhook events still kept about them, and the audit log's rows about them. Rows are
/// as stored, column names as in the database.
pub async fn export(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
) -> Result<serde_json::Value> {
    use rapport_schema as s;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let ws = who.workspace_id;
    let people = contacts::erasure_set(db, ws, id).await?;
    let mut stores = serde_json::Map::new();
    stores.insert(
        "contacts".into(),
        rows::<s::contact::Entity>(db, "contacts", "id", &people).await?,
    );
    for store in STORES {
        let found = store_rows(db, store, &people).await?;
        let entry = stores
            .entry(store.table)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let (Some(list), serde_json::Value::Array(more)) = (entry.as_array_mut(), found) {
            // `contacts` is named twice (the people and the rows merged into them): each
            // row once, by id.
            let known: std::collections::HashSet<Option<i64>> =
                list.iter().map(|r| r["id"].as_i64()).collect();
            list.extend(more.into_iter().filter(|r| {
                let id = r["id"].as_i64();
                id.is_none() || !known.contains(&id)
            }));
        }
    }
    let scores = s::score::Entity::find()
        .filter(s::score::Column::WorkspaceId.eq(ws))
        .filter(s::score::Column::Kind.is_in(analytics::registry::contact_kinds()))
        .filter(s::score::Column::SubjectId.is_in(people.iter().copied()))
        .all(db)
        .await?;
    let history = s::score_history::Entity::find()
        .filter(s::score_history::Column::WorkspaceId.eq(ws))
        .filter(s::score_history::Column::Kind.is_in(analytics::registry::contact_kinds()))
        .filter(s::score_history::Column::SubjectId.is_in(people.iter().copied()))
        .all(db)
        .await?;
    let subjects: Vec<String> = people
        .iter()
        .map(|&p| outbox::Subject::contact(p).key())
        .collect();
    let events = s::webhook_event::Entity::find()
        .filter(s::webhook_event::Column::WorkspaceId.eq(ws))
        .filter(s::webhook_event::Column::Subject.is_in(subjects.clone()))
        .all(db)
        .await?;
    let audit_rows = s::audit_event::Entity::find()
        .filter(s::audit_event::Column::WorkspaceId.eq(ws))
        .filter(s::audit_event::Column::Subject.is_in(subjects))
        .all(db)
        .await?;
    stores.insert("scores".into(), json(scores)?);
    stores.insert("score_history".into(), json(history)?);
    stores.insert("webhook_events".into(), json(events)?);
    stores.insert("audit_events".into(), json(audit_rows)?);
    Ok(serde_json::json!({
        "contactId": id.to_string(),
        "mergedIds": people[1..].iter().map(i64::to_string).collect::<Vec<_>>(),
        "exportedAt": crate::clock::now(),
        "stores": stores,
    }))
}

/// The rows of `store` that name one of `people`.
async fn store_rows(
    db: &DatabaseConnection,
    store: &Store,
    people: &[i64],
) -> Result<serde_json::Value> {
    use rapport_schema as s;
    let (t, c) = (store.table, store.column);
    match t {
        "contact_tags" => rows::<s::contact_tag::Entity>(db, t, c, people).await,
        "deals" => rows::<s::deal::Entity>(db, t, c, people).await,
        "activities" => rows::<s::activity::Entity>(db, t, c, people).await,
        "tasks" => rows::<s::task::Entity>(db, t, c, people).await,
        "inquiries" => rows::<s::inquiry::Entity>(db, t, c, people).await,
        "orders" => rows::<s::order::Entity>(db, t, c, people).await,
        "events" => rows::<s::event::Entity>(db, t, c, people).await,
        "contact_field_values" => rows::<s::contact_field_value::Entity>(db, t, c, people).await,
        "contact_merges" => rows::<s::contact_merge::Entity>(db, t, c, people).await,
        "contacts" => rows::<s::contact::Entity>(db, t, c, people).await,
        "consent_events" => rows::<s::consent_event::Entity>(db, t, c, people).await,
        "topic_preferences" => rows::<s::topic_preference::Entity>(db, t, c, people).await,
        "campaign_messages" => rows::<s::campaign_message::Entity>(db, t, c, people).await,
        "sequence_enrollments" => rows::<s::sequence_enrollment::Entity>(db, t, c, people).await,
        "sequence_messages" => rows::<s::sequence_message::Entity>(db, t, c, people).await,
        "transactional_messages" => {
            rows::<s::transactional_message::Entity>(db, t, c, people).await
        }
        "lifecycle_changes" => rows::<s::lifecycle_change::Entity>(db, t, c, people).await,
        "plugin_scores" => rows::<s::plugin_score::Entity>(db, t, c, people).await,
        "plugin_score_history" => rows::<s::plugin_score_history::Entity>(db, t, c, people).await,
        "plugin_shadow_scores" => rows::<s::plugin_shadow_score::Entity>(db, t, c, people).await,
        "contact_insights" => rows::<s::contact_insight::Entity>(db, t, c, people).await,
        "insight_changes" => rows::<s::insight_change::Entity>(db, t, c, people).await,
        "plugin_actions" => rows::<s::plugin_action::Entity>(db, t, c, people).await,
        "plugin_runs" => {
            runs_fit(db, people).await?;
            rows::<s::plugin_run::Entity>(db, t, c, people).await
        }
        other => Err(crate::EngineError::internal(format!(
            "the export does not know the store {other}"
        ))),
    }
}

/// Bytes of plugin run records (captured inputs, answers, logs) one export may hold: a
/// plugin failing on every call for a person can leave thousands of 64 KiB inputs, and
/// the export is built in memory.
pub const MAX_EXPORT_RUN_BYTES: i64 = 64 << 20;

/// Refuses an export whose plugin run records are over [`MAX_EXPORT_RUN_BYTES`], measured
/// by the database before any is loaded.
async fn runs_fit(db: &DatabaseConnection, people: &[i64]) -> Result<()> {
    use sea_orm::{ConnectionTrait, Statement};
    let ids = people
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(COALESCE(LENGTH(input), 0) + LENGTH(config) \
         + COALESCE(LENGTH(CAST(output AS TEXT)), 0) + LENGTH(CAST(log AS TEXT)) \
         + COALESCE(LENGTH(error), 0)), 0) AS BIGINT) FROM plugin_runs WHERE contact_id IN ({ids})"
    );
    let bytes: i64 = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    if bytes > MAX_EXPORT_RUN_BYTES {
        return Err(crate::EngineError::invalid(
            "id",
            format!(
                "this contact's plugin run records hold {} MiB, more than an export takes \
                 ({} MiB); read them with Plugin.runs(contactId) or prune them first",
                bytes >> 20,
                MAX_EXPORT_RUN_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

/// The rows of entity `E` whose `column` is one of `people`, at most
/// [`MAX_EXPORT_ROWS`].
async fn rows<E>(
    db: &DatabaseConnection,
    table: &str,
    column: &str,
    people: &[i64],
) -> Result<serde_json::Value>
where
    E: sea_orm::EntityTrait,
    E::Model: serde::Serialize,
{
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
    use std::str::FromStr;
    let col = E::Column::from_str(column)
        .map_err(|_| crate::EngineError::internal(format!("{table} has no column {column}")))?;
    let found = E::find()
        .filter(col.is_in(people.iter().copied()))
        .limit(MAX_EXPORT_ROWS + 1)
        .all(db)
        .await?;
    if found.len() as u64 > MAX_EXPORT_ROWS {
        return Err(crate::EngineError::invalid(
            "id",
            format!(
                "this contact has more than {MAX_EXPORT_ROWS} rows in {table}; \
                 export that table with the list API instead"
            ),
        ));
    }
    json(found)
}

fn json(rows: impl serde::Serialize) -> Result<serde_json::Value> {
    serde_json::to_value(rows).map_err(|e| crate::EngineError::internal_from("exporting rows", e))
}
