//! Recommended actions: what is open for a contact, accepting (which carries the action
//! out where Rapport can: a task, an email, an enrollment) or rejecting, and acceptance
//! rates.

use std::collections::HashMap;

use chrono::Duration;
use rapport_plugins::ActionKind;
use rapport_schema::{contact, plugin, plugin_action};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::clock;
use crate::crm::tasks::{self, TaskInput};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{ConsentPurpose, Patch, Scope};

/// Open actions of contacts from enabled plugins, highest priority first (then newest),
/// by contact. An uploaded plugin's action overrides a built-in one of the same kind for
/// the contact (see [`super::rules`]): the built-in one is left out.
pub async fn open_for(
    db: &DatabaseConnection,
    workspace_id: i64,
    contacts: &[i64],
) -> Result<HashMap<i64, Vec<plugin_action::Model>>> {
    let plugins = plugin::Entity::find()
        .filter(plugin::Column::WorkspaceId.eq(workspace_id))
        .all(db)
        .await?;
    let enabled: std::collections::HashSet<i64> =
        plugins.iter().filter(|p| p.enabled).map(|p| p.id).collect();
    let builtin = plugins
        .iter()
        .find(|p| p.name == super::rules::NAME)
        .map(|p| p.id);
    let mut by_contact: HashMap<i64, Vec<plugin_action::Model>> = HashMap::new();
    for a in plugin_action::Entity::find()
        .filter(plugin_action::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin_action::Column::ContactId.is_in(contacts.iter().copied()))
        .filter(plugin_action::Column::Status.eq("open"))
        .order_by_desc(plugin_action::Column::Priority)
        .order_by_desc(plugin_action::Column::Id)
        .all(db)
        .await?
    {
        if enabled.contains(&a.plugin_id) {
            by_contact.entry(a.contact_id).or_default().push(a);
        }
    }
    if let Some(builtin) = builtin {
        for actions in by_contact.values_mut() {
            let overridden: std::collections::HashSet<String> = actions
                .iter()
                .filter(|a| a.plugin_id != builtin)
                .map(|a| a.kind.clone())
                .collect();
            actions.retain(|a| a.plugin_id != builtin || !overridden.contains(&a.kind));
        }
    }
    Ok(by_contact)
}

/// The value of parameter `key` of an action.
pub fn param(a: &plugin_action::Model, key: &str) -> Option<String> {
    let params: Vec<(String, String)> =
        serde_json::from_value(a.params.clone()).unwrap_or_default();
    params.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Who the emails of accepted `send-email` actions are from.
#[derive(Clone, Debug)]
pub struct Sender {
    /// The sender's address.
    pub email: String,
    /// The sender's display name.
    pub name: Option<String>,
}

/// Accepts an open action and carries it out: `create-task` and `call` create a task for
/// the contact's owner (title and due date from the parameters). `send-email` sends the
/// saved template its `template` names to the contact from `sender`, through the
/// transactional path: the job queue and marketing's consent rules (a granted opt-in),
/// at most once per action. `enroll-sequence` enrolls the contact in the active sequence named by
/// `sequence` (unless re-entry rules keep them out, which the outcome says). `offer` and
/// `custom` are recorded as accepted for the calling app to carry out.
pub async fn accept(
    db: &DatabaseConnection,
    who: &Principal,
    action_id: i64,
    note: Option<String>,
    sender: Option<&Sender>,
) -> Result<plugin_action::Model> {
    who.require(Scope::Write)?;
    let a = open_action(db, who, action_id).await?;
    let kind = ActionKind::parse(&a.kind)
        .ok_or_else(|| EngineError::Conflict(format!("unknown action kind {}", a.kind)))?;
    // The email is queued before the action is marked accepted, under a key the action
    // owns: an accept that fails after queuing and is tried again finds the message it
    // queued instead of sending a second one.
    let emailed = match kind {
        ActionKind::SendEmail => Some(send_email(db, who, &a, sender).await?),
        _ => None,
    };
    let txn = crate::platform::db::write(db).await?;
    let outcome = match kind {
        ActionKind::CreateTask | ActionKind::Call => {
            let c = records::get::<contact::Entity>(&txn, who.workspace_id, a.contact_id).await?;
            let title = param(&a, "title").unwrap_or_else(|| match kind {
                ActionKind::Call => format!("Call {} {}", c.first_name, c.last_name),
                _ => a.rationale.clone(),
            });
            let due = param(&a, "due-in-days")
                .and_then(|d| d.parse::<i64>().ok())
                .filter(|d| (0..=365).contains(d))
                .map(|d| clock::now() + Duration::days(d));
            let task = tasks::create(
                &txn,
                who,
                TaskInput {
                    title: Some(title),
                    due_at: due.map_or(Patch::Keep, Patch::Set),
                    status: None,
                    assignee_id: c.owner_id.map_or(Patch::Keep, Patch::Set),
                    contact_id: Patch::Set(c.id),
                    deal_id: Patch::Keep,
                },
            )
            .await?;
            Some(serde_json::json!({"taskId": task.id}))
        }
        ActionKind::EnrollSequence => {
            let name = param(&a, "sequence").ok_or_else(|| {
                EngineError::invalid("action", "an enroll-sequence action needs a `sequence`")
            })?;
            let found = rapport_schema::sequence::Entity::find()
                .filter(rapport_schema::sequence::Column::WorkspaceId.eq(who.workspace_id))
                .filter(rapport_schema::sequence::Column::Name.eq(name.as_str()))
                .one(&txn)
                .await?
                .ok_or_else(|| EngineError::not_found("Sequence", &name))?;
            let s = crate::engagement::sequences::get(&txn, who.workspace_id, found.id).await?;
            if crate::engagement::sequences::status(&s.sequence)
                != crate::values::SequenceStatus::Active
            {
                return Err(EngineError::Conflict(format!(
                    "sequence '{name}' is {}; activate it to enroll contacts",
                    crate::engagement::sequences::status(&s.sequence)
                )));
            }
            let done = crate::engagement::sequences::enroll_in(
                &txn,
                &s,
                &[a.contact_id],
                &format!("plugin:{}", a.plugin_id),
                clock::now(),
            )
            .await?;
            Some(match (done.enrollments.first(), done.skipped.first()) {
                (Some(e), _) => {
                    serde_json::json!({"sequenceId": s.sequence.id, "enrollmentId": e.id})
                }
                (None, Some((_, why))) => {
                    serde_json::json!({"sequenceId": s.sequence.id, "skipped": why})
                }
                _ => serde_json::json!({"sequenceId": s.sequence.id}),
            })
        }
        ActionKind::SendEmail => emailed,
        ActionKind::Offer | ActionKind::Custom => None,
    };
    let done = answer(&txn, who, a, "accepted", note, outcome).await?;
    txn.commit().await?;
    Ok(done)
}

/// Queues a `send-email` action's email; its outcome names the message and template.
async fn send_email(
    db: &DatabaseConnection,
    who: &Principal,
    a: &plugin_action::Model,
    sender: Option<&Sender>,
) -> Result<serde_json::Value> {
    use crate::engagement::transactional::{self, SendEmailInput};
    use rapport_schema::email_template;
    let name = param(a, "template").ok_or_else(|| {
        EngineError::invalid("action", "a send-email action needs a `template` parameter")
    })?;
    let template = email_template::Entity::find()
        .filter(email_template::Column::WorkspaceId.eq(who.workspace_id))
        .filter(email_template::Column::Name.eq(name.as_str()))
        .filter(email_template::Column::DeletedAt.is_null())
        .one(db)
        .await?
        .ok_or_else(|| {
            EngineError::invalid(
                "action",
                format!("the action asks for the email template '{name}', which does not exist"),
            )
        })?;
    // Always marketing: the purpose decides whose consent is needed, and a plugin's
    // answer must not be able to waive the opt-in a recommended email needs.
    let purpose = ConsentPurpose::Marketing;
    let sender = sender.ok_or_else(|| {
        EngineError::invalid("fromEmail", "a send-email action needs a sender address")
    })?;
    let queue = crate::platform::queue::Queue::new(db)?;
    let queued = transactional::send(
        db,
        &queue,
        who,
        SendEmailInput {
            contact_id: a.contact_id,
            template_id: template.id,
            purpose,
            idempotency_key: transactional::IdempotencyKey::of_action(a.id),
            from_email: sender.email.clone(),
            from_name: sender.name.clone(),
        },
    )
    .await?;
    Ok(serde_json::json!({"messageId": queued.message.id, "templateId": template.id}))
}

/// Rejects an open action.
pub async fn reject(
    db: &DatabaseConnection,
    who: &Principal,
    action_id: i64,
    note: Option<String>,
) -> Result<plugin_action::Model> {
    who.require(Scope::Write)?;
    let a = open_action(db, who, action_id).await?;
    answer(db, who, a, "rejected", note, None).await
}

async fn open_action(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
) -> Result<plugin_action::Model> {
    let a = records::get::<plugin_action::Entity>(db, who.workspace_id, id).await?;
    // Accepting acts on the contact (a task for its owner, an enrollment): a member answers
    // only for contacts they may change.
    records::ensure_may_change_attached(db, who, None, Some(a.contact_id), None).await?;
    if a.status != "open" {
        return Err(EngineError::Conflict(format!(
            "the action is already {}",
            a.status
        )));
    }
    Ok(a)
}

/// Marks an open action answered. Only an action still open is changed, so of two
/// answers at once one wins and the other is a CONFLICT (and its transaction, with the
/// task or enrollment it made, rolls back).
async fn answer(
    db: &impl sea_orm::ConnectionTrait,
    who: &Principal,
    a: plugin_action::Model,
    status: &str,
    note: Option<String>,
    outcome: Option<serde_json::Value>,
) -> Result<plugin_action::Model> {
    let now = clock::now();
    let changed = plugin_action::Entity::update_many()
        .set(plugin_action::ActiveModel {
            status: Set(status.to_string()),
            responded_at: Set(Some(now)),
            responded_by: Set(who.key_id),
            note: Set(note.clone()),
            outcome: Set(outcome.clone()),
            ..Default::default()
        })
        .filter(plugin_action::Column::Id.eq(a.id))
        .filter(plugin_action::Column::Status.eq("open"))
        .exec(db)
        .await?;
    if changed.rows_affected == 0 {
        return Err(EngineError::Conflict(
            "the action was answered meanwhile".into(),
        ));
    }
    Ok(plugin_action::Model {
        status: status.to_string(),
        responded_at: Some(now),
        responded_by: who.key_id,
        note,
        outcome,
        ..a
    })
}

/// How people answered one plugin's actions of one kind.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct Acceptance {
    /// The plugin.
    pub plugin: String,
    /// The action kind.
    pub kind: String,
    /// Actions recommended (superseded ones included).
    pub offered: i64,
    /// Accepted.
    pub accepted: i64,
    /// Rejected.
    pub rejected: i64,
    /// Accepted actions whose contact converted (a won deal or an order) within
    /// [`CONVERSION_DAYS`] after the answer.
    pub converted_after_accepting: i64,
    /// The same for rejected actions: what the contacts did without the action, to
    /// compare with.
    pub converted_after_rejecting: i64,
    /// Accepted actions whose outcome is known: converted, or answered at least
    /// [`CONVERSION_DAYS`] ago (the denominator of a conversion rate; an answer still
    /// inside its window counts only once it converts).
    pub settled_accepted: i64,
    /// The same for rejected actions.
    pub settled_rejected: i64,
}

/// How long after an answer a conversion counts towards the action.
pub const CONVERSION_DAYS: i64 = 90;

/// Acceptance per plugin and action kind in the workspace.
pub async fn acceptance(db: &DatabaseConnection, workspace_id: i64) -> Result<Vec<Acceptance>> {
    let rows = plugin_action::Entity::find()
        .filter(plugin_action::Column::WorkspaceId.eq(workspace_id))
        .select_only()
        .column(plugin_action::Column::PluginId)
        .column(plugin_action::Column::Kind)
        .column(plugin_action::Column::Status)
        .column_as(plugin_action::Column::Id.count(), "n")
        .group_by(plugin_action::Column::PluginId)
        .group_by(plugin_action::Column::Kind)
        .group_by(plugin_action::Column::Status)
        .into_tuple::<(i64, String, String, i64)>()
        .all(db)
        .await?;
    let names: HashMap<i64, String> = plugin::Entity::find()
        .filter(plugin::Column::WorkspaceId.eq(workspace_id))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let mut by_key: std::collections::BTreeMap<(String, String), Acceptance> = Default::default();
    for (plugin_id, kind, status, n) in rows {
        let name = names.get(&plugin_id).cloned().unwrap_or_default();
        let entry = by_key
            .entry((name.clone(), kind.clone()))
            .or_insert(Acceptance {
                plugin: name,
                kind,
                offered: 0,
                accepted: 0,
                rejected: 0,
                converted_after_accepting: 0,
                converted_after_rejecting: 0,
                settled_accepted: 0,
                settled_rejected: 0,
            });
        entry.offered += n;
        match status.as_str() {
            "accepted" => entry.accepted += n,
            "rejected" => entry.rejected += n,
            _ => {}
        }
    }
    for d in downstream(db, workspace_id).await? {
        let name = names.get(&d.plugin_id).cloned().unwrap_or_default();
        if let Some(entry) = by_key.get_mut(&(name, d.kind)) {
            let (converted, settled) = if d.accepted {
                (
                    &mut entry.converted_after_accepting,
                    &mut entry.settled_accepted,
                )
            } else {
                (
                    &mut entry.converted_after_rejecting,
                    &mut entry.settled_rejected,
                )
            };
            *converted += i64::from(d.converted);
            *settled += 1;
        }
    }
    Ok(by_key.into_values().collect())
}

/// An answered action: plugin, kind, status, contact, when answered.
type Answered = (
    i64,
    String,
    String,
    i64,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// What followed an answered action whose outcome is known.
struct Downstream {
    plugin_id: i64,
    kind: String,
    accepted: bool,
    converted: bool,
}

/// Each answered action whose outcome is known — its contact converted within
/// [`CONVERSION_DAYS`] after the answer (a won deal closed or an order placed, not
/// cancelled or refunded), or that many days have passed without.
async fn downstream(db: &DatabaseConnection, workspace_id: i64) -> Result<Vec<Downstream>> {
    use crate::values::{DealStatus, OrderStatus};
    use rapport_schema::{deal, order};
    let answered: Vec<Answered> = plugin_action::Entity::find()
        .select_only()
        .column(plugin_action::Column::PluginId)
        .column(plugin_action::Column::Kind)
        .column(plugin_action::Column::Status)
        .column(plugin_action::Column::ContactId)
        .column(plugin_action::Column::RespondedAt)
        .filter(plugin_action::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin_action::Column::Status.is_in(["accepted", "rejected"]))
        .into_tuple()
        .all(db)
        .await?;
    if answered.is_empty() {
        return Ok(Vec::new());
    }
    let contacts: Vec<i64> = {
        let set: std::collections::HashSet<i64> = answered.iter().map(|a| a.3).collect();
        set.into_iter().collect()
    };
    let mut moments: HashMap<i64, Vec<chrono::DateTime<chrono::Utc>>> = HashMap::new();
    for chunk in contacts.chunks(1000) {
        let won: Vec<(Option<i64>, Option<chrono::DateTime<chrono::Utc>>)> = deal::Entity::find()
            .select_only()
            .column(deal::Column::ContactId)
            .column(deal::Column::ClosedAt)
            .filter(deal::Column::WorkspaceId.eq(workspace_id))
            .filter(deal::Column::ContactId.is_in(chunk.iter().copied()))
            .filter(deal::Column::Status.eq(DealStatus::Won.as_str()))
            .filter(deal::Column::DeletedAt.is_null())
            .into_tuple()
            .all(db)
            .await?;
        for (contact, closed) in won {
            if let (Some(c), Some(at)) = (contact, closed) {
                moments.entry(c).or_default().push(at);
            }
        }
        let orders: Vec<(i64, String, chrono::DateTime<chrono::Utc>)> = order::Entity::find()
            .select_only()
            .column(order::Column::ContactId)
            .column(order::Column::Status)
            .column(order::Column::PlacedAt)
            .filter(order::Column::WorkspaceId.eq(workspace_id))
            .filter(order::Column::ContactId.is_in(chunk.iter().copied()))
            .filter(order::Column::DeletedAt.is_null())
            .into_tuple()
            .all(db)
            .await?;
        for (contact, status, placed) in orders {
            let lost = matches!(
                OrderStatus::from_db(&status),
                OrderStatus::Cancelled | OrderStatus::Refunded
            );
            if !lost {
                moments.entry(contact).or_default().push(placed);
            }
        }
    }
    let window = Duration::days(CONVERSION_DAYS);
    let now = clock::now();
    Ok(answered
        .into_iter()
        .filter_map(|(plugin_id, kind, status, contact, answered_at)| {
            let at = answered_at?;
            let converted = moments
                .get(&contact)
                .is_some_and(|ms| ms.iter().any(|&m| m > at && m <= at + window));
            (converted || at + window <= now).then(|| Downstream {
                plugin_id,
                kind,
                accepted: status == "accepted",
                converted,
            })
        })
        .collect())
}
