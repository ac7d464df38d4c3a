//! Every store of a contact's data, in one list: what the right to erasure deletes and
//! what a merge moves to the surviving contact.
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
use crate::platform::{db, outbox};
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
    // A merged contact's insights stay behind and go at the next full rescoring; the
    // survivor's are recomputed from the orders it absorbed.
    store("contact_insights", OnErase::Delete, OnMerge::Stay),
    store("insight_changes", OnErase::Delete, OnMerge::Stay),
    store("plugin_actions", OnErase::Delete, OnMerge::Move),
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
    analytics::registry::erase_contact_scores(&tx, &people).await?;
    analytics::insights::erase(&tx, &people).await?;
    plugins::runs::erase_contacts(&tx, &people).await?;
    sequences::erase_contacts(&tx, &people).await?;
    for raw in contacts::addresses_of(&tx, &people).await? {
        if let Ok(address) = EmailAddress::parse("email", &raw) {
            let hash = suppression::email_hash(&address);
            suppression::add(&tx, ws, &hash, SuppressionReason::Erased, None).await?;
        }
    }
    // Last: consent history, campaign and transactional messages go with the contact rows
    // (the database cascades them), deals are unlinked.
    contacts::erase_for_good(&tx, ws, &people).await?;
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
