//! Upserting many contacts by email at once, all or nothing: the API's bulk mutation and
//! CSV imports. New contacts are inserted together ([`create_many`]); existing ones are
//! written one by one, as a single update is.

use std::collections::HashMap;

use rapport_schema::{contact, contact_tag};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use super::{
    BULK_LIMIT, ContactInput, ParsedContact, check_references, fill, new_row, parse,
    require_identity, write,
};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::outbox;
use crate::values::{Patch, WebhookEventType};

/// The result of upserting one contact.
pub struct Upserted {
    /// The contact as stored.
    pub contact: contact::Model,
    /// Whether it was new.
    pub created: bool,
}

/// A contact input parsed for an upsert by email, its email present ([`check_upsert`]).
#[derive(Clone)]
pub struct Checked(ParsedContact);

/// Creates or updates many contacts keyed by email, all or nothing.
///
/// Every input is parsed before anything is written, so one bad row fails the call with
/// its index named and leaves the database untouched.
pub async fn bulk_upsert(
    db: &DatabaseConnection,
    who: &Principal,
    inputs: Vec<ContactInput>,
) -> Result<Vec<Upserted>> {
    if inputs.len() > BULK_LIMIT {
        return Err(EngineError::invalid(
            "contacts",
            format!(
                "at most {BULK_LIMIT} contacts per call (got {})",
                inputs.len()
            ),
        ));
    }
    let checked = inputs
        .into_iter()
        .enumerate()
        .map(|(i, input)| check_upsert(input, &format!("contacts[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    upsert_checked(db, who, checked).await
}

/// [`bulk_upsert`] of inputs already checked (an import checks each row as it reads it,
/// to refuse only that row).
pub async fn upsert_checked(
    db: &DatabaseConnection,
    who: &Principal,
    rows: Vec<Checked>,
) -> Result<Vec<Upserted>> {
    let ws = who.workspace_id;
    if rows.len() > BULK_LIMIT {
        return Err(EngineError::invalid(
            "contacts",
            format!(
                "at most {BULK_LIMIT} contacts per call (got {})",
                rows.len()
            ),
        ));
    }
    let mut parsed = Vec::with_capacity(rows.len());
    let mut seen = HashMap::new();
    for (i, Checked(p)) in rows.into_iter().enumerate() {
        let Patch::Set(email) = &p.email else {
            unreachable!("checked")
        };
        if let Some(j) = seen.insert(email.as_str().to_string(), i) {
            return Err(EngineError::invalid(
                format!("contacts[{i}].email"),
                format!("{email} also appears at contacts[{j}]"),
            ));
        }
        parsed.push(p);
    }
    let tx = crate::platform::db::write(db).await?;
    let emails: Vec<String> = seen.into_keys().collect();
    let existing: HashMap<String, contact::Model> = crate::platform::db::planned_lookup(
        &tx,
        contact::Entity::find()
            .filter(contact::Column::WorkspaceId.eq(ws))
            .filter(contact::Column::Email.is_in(emails))
            .all(&tx),
    )
    .await?
    .into_iter()
    .filter_map(|c| c.email.clone().map(|e| (e, c)))
    .collect();
    let mut out: Vec<Option<Upserted>> = (0..parsed.len()).map(|_| None).collect();
    let mut fresh = Vec::new();
    for (i, p) in parsed.into_iter().enumerate() {
        check_references(&tx, ws, &p).await?;
        let Patch::Set(email) = &p.email else {
            unreachable!("checked above")
        };
        match existing.get(email.as_str()) {
            Some(c) if c.deleted_at.is_some() => {
                return Err(EngineError::Conflict(format!(
                    "contacts[{i}]: contact {} with email {email} is deleted; restore it first",
                    c.id
                )));
            }
            Some(c) => {
                out[i] = Some(Upserted {
                    contact: write(&tx, ws, c.clone().into(), p).await?,
                    created: false,
                });
            }
            None => {
                require_identity(&p, &format!("contacts[{i}]"))?;
                fresh.push((i, p));
            }
        }
    }
    for (i, contact) in create_many(&tx, ws, fresh).await? {
        out[i] = Some(Upserted {
            contact,
            created: true,
        });
    }
    tx.commit().await?;
    Ok(out
        .into_iter()
        .map(|u| u.expect("every input is created or updated"))
        .collect())
}

/// Inserts new contacts together, each keyed by its email (`rows` hold their place in
/// the caller's list): one statement for the rows, one for their tags, one for their
/// first lifecycle stage, and their `contact.created` events — what [`write`] does for
/// one, at a bulk import's pace.
async fn create_many(
    db: &impl ConnectionTrait,
    ws: i64,
    rows: Vec<(usize, ParsedContact)>,
) -> Result<Vec<(usize, contact::Model)>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let fields = match rows.iter().any(|(_, p)| p.attributes.is_some()) {
        true => Some(crate::crm::fields::definitions(db, ws).await?),
        false => None,
    };
    let mut models = Vec::with_capacity(rows.len());
    let mut order = Vec::with_capacity(rows.len());
    let mut tags = HashMap::new();
    for (i, p) in rows {
        let mut am = new_row(ws);
        let listed = fill(&mut am, p, fields.as_ref())?;
        let sea_orm::ActiveValue::Set(Some(email)) = am.email.clone() else {
            return Err(EngineError::internal(
                "a new contact in a bulk insert has no email",
            ));
        };
        // A bulk insert skips the entity's save hook, which keeps the hash in step.
        am.email_hash = Set(Some(contact::email_hash(&email)));
        if let Some(t) = listed {
            tags.insert(email.clone(), t);
        }
        order.push((i, email));
        models.push(am);
    }
    let mut saved: HashMap<String, contact::Model> = contact::Entity::insert_many(models)
        .exec_with_returning(db)
        .await?
        .into_iter()
        .filter_map(|c| c.email.clone().map(|e| (e, c)))
        .collect();
    let mut out = Vec::with_capacity(order.len());
    for (i, email) in order {
        let c = saved
            .remove(&email)
            .ok_or_else(|| EngineError::internal("an inserted contact did not come back"))?;
        out.push((i, c));
    }
    let tag_rows: Vec<contact_tag::ActiveModel> = out
        .iter()
        .flat_map(|(_, c)| {
            let listed = c.email.as_ref().and_then(|e| tags.get(e));
            listed
                .into_iter()
                .flatten()
                .map(|t| contact_tag::ActiveModel {
                    contact_id: Set(c.id),
                    tag: Set(t.as_str().to_string()),
                    workspace_id: Set(ws),
                })
        })
        .collect();
    if !tag_rows.is_empty() {
        contact_tag::Entity::insert_many(tag_rows)
            .exec_without_returning(db)
            .await?;
    }
    if let Some(fields) = &fields {
        let saved: Vec<&contact::Model> = out.iter().map(|(_, c)| c).collect();
        crate::crm::fields::sync_many(db, fields, &saved).await?;
    }
    let now = clock::now();
    rapport_schema::lifecycle_change::Entity::insert_many(out.iter().map(|(_, c)| {
        rapport_schema::lifecycle_change::ActiveModel {
            workspace_id: Set(ws),
            contact_id: Set(c.id),
            from_stage: Set(None),
            to_stage: Set(c.lifecycle_stage.clone()),
            changed_at: Set(now),
            ..Default::default()
        }
    }))
    .exec_without_returning(db)
    .await?;
    let event = WebhookEventType::ContactCreated;
    let told: Vec<(outbox::Subject, &contact::Model)> = out
        .iter()
        .map(|(_, c)| (outbox::Subject::contact(c.id), c))
        .collect();
    outbox::created_many(db, ws, event, told).await?;
    Ok(out)
}

/// Checks one input as [`bulk_upsert`] does before writing (every value parsed, the
/// email present), without touching the database; errors name `field`.
pub fn check_upsert(input: ContactInput, field: &str) -> Result<Checked> {
    let p = parse(input, field)?;
    if !matches!(p.email, Patch::Set(_)) {
        return Err(EngineError::invalid(
            format!("{field}.email"),
            "is required to upsert (it is the key)",
        ));
    }
    Ok(Checked(p))
}
