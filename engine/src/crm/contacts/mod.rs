//! Contacts: creating, changing, bulk upserting by email, lead conversion and erasure.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::outbox;
use crate::platform::records::{self, Deleted};
use crate::values::{
    Attributes, EmailAddress, LifecycleStage, Patch, PhoneNumber, Tag, Text, TimeZoneName,
    WebhookEventType,
};
use rapport_schema::{
    activity, company, contact, contact_merge, contact_tag, event, inquiry, order, task, user,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use std::collections::HashMap;

mod bulk;
pub use bulk::{Checked, Upserted, bulk_upsert, check_upsert, upsert_checked};

/// The most contacts one bulk call may upsert.
pub const BULK_LIMIT: usize = 1000;

/// Fields of a contact as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct ContactInput {
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Primary email address, the natural key.
    pub email: Patch<String>,
    /// Further email addresses (replaces the list).
    pub other_emails: Option<Vec<String>>,
    /// Phone number as typed.
    pub phone: Patch<String>,
    /// The contact's company.
    pub company_id: Patch<i64>,
    /// The team member who owns the contact.
    pub owner_id: Patch<i64>,
    /// Lifecycle stage; new contacts start as leads.
    pub lifecycle_stage: Option<LifecycleStage>,
    /// Where the contact came from (channel or campaign).
    pub source: Patch<String>,
    /// Tags (replaces the list).
    pub tags: Option<Vec<String>>,
    /// Custom attributes, a JSON object (replaces the object).
    pub attributes: Option<serde_json::Value>,
    /// IANA time zone.
    pub timezone: Patch<String>,
}

/// The input after parsing: every value checked.
#[derive(Clone)]
struct ParsedContact {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Patch<EmailAddress>,
    other_emails: Option<Vec<EmailAddress>>,
    phone: Patch<PhoneNumber>,
    company_id: Patch<i64>,
    owner_id: Patch<i64>,
    lifecycle_stage: Option<LifecycleStage>,
    source: Patch<String>,
    tags: Option<Vec<Tag>>,
    attributes: Option<Attributes>,
    /// How errors name the attributes (`attributes`, `contacts[3].attributes`).
    attributes_field: String,
    timezone: Patch<TimeZoneName>,
}

/// Addresses besides the main one that a contact may have.
pub const MAX_OTHER_EMAILS: usize = 20;

fn parse(input: ContactInput, field: &str) -> Result<ParsedContact> {
    let f = |name: &str| {
        if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        }
    };
    let name = |raw: Option<String>, n: &str| -> Result<Option<String>> {
        raw.map(|r| Text::parse_blank_ok(&f(n), &r, 100))
            .transpose()
    };
    Ok(ParsedContact {
        first_name: name(input.first_name, "firstName")?,
        last_name: name(input.last_name, "lastName")?,
        email: input
            .email
            .parse(|e| EmailAddress::parse(&f("email"), &e))?,
        other_emails: input
            .other_emails
            .map(|l| {
                if l.len() > MAX_OTHER_EMAILS {
                    return Err(EngineError::invalid(
                        f("otherEmails"),
                        format!("at most {MAX_OTHER_EMAILS} addresses (got {})", l.len()),
                    ));
                }
                l.iter()
                    .map(|e| EmailAddress::parse(&f("otherEmails"), e))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?,
        phone: input.phone.parse(|p| PhoneNumber::parse(&f("phone"), &p))?,
        company_id: input.company_id,
        owner_id: input.owner_id,
        lifecycle_stage: input.lifecycle_stage,
        source: input
            .source
            .parse(|s| Text::parse(&f("source"), &s, 100).map(Text::into_string))?,
        tags: input
            .tags
            .map(|t| Tag::parse_list(&f("tags"), &t))
            .transpose()?,
        attributes: input
            .attributes
            .map(|a| Attributes::parse(&f("attributes"), a))
            .transpose()?,
        attributes_field: f("attributes"),
        timezone: input
            .timezone
            .parse(|t| TimeZoneName::parse(&f("timezone"), &t))?,
    })
}

/// Checks that the contact's references point at live rows of the same workspace.
async fn check_references(db: &impl ConnectionTrait, ws: i64, p: &ParsedContact) -> Result<()> {
    if let Patch::Set(id) = p.company_id {
        records::ensure_exists::<company::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = p.owner_id {
        records::ensure_exists::<user::Entity>(db, ws, id).await?;
    }
    Ok(())
}

async fn ensure_email_free(
    db: &impl ConnectionTrait,
    ws: i64,
    email: &EmailAddress,
    except: Option<i64>,
) -> Result<()> {
    let mut q = contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(ws))
        .filter(contact::Column::Email.eq(email.as_str()));
    if let Some(id) = except {
        q = q.filter(contact::Column::Id.ne(id));
    }
    if let Some(other) = q.one(db).await? {
        let state = if other.deleted_at.is_some() {
            " (deleted; restore it instead)"
        } else {
            ""
        };
        return Err(EngineError::Conflict(format!(
            "contact {} already has the email {email}{state}",
            other.id
        )));
    }
    Ok(())
}

/// Sets a row's fields from a parsed input (`fields`, the workspace's typed fields, when
/// the input has attributes: they are checked against them); the tags to store beside it.
fn fill(
    am: &mut contact::ActiveModel,
    p: ParsedContact,
    fields: Option<&HashMap<String, super::fields::Field>>,
) -> Result<Option<Vec<Tag>>> {
    if let Some(v) = p.first_name {
        am.first_name = Set(v);
    }
    if let Some(v) = p.last_name {
        am.last_name = Set(v);
    }
    (p.email.parse(|e| Ok(e.as_str().to_string()))?).apply(&mut am.email);
    if let Some(list) = p.other_emails {
        am.other_emails = Set(json!(
            list.iter().map(EmailAddress::as_str).collect::<Vec<_>>()
        ));
    }
    match p.phone {
        Patch::Keep => {}
        Patch::Clear => {
            am.phone = Set(None);
            am.phone_normalized = Set(None);
        }
        Patch::Set(ph) => {
            am.phone = Set(Some(ph.as_str().to_string()));
            am.phone_normalized = Set(Some(ph.normalized().to_string()));
        }
    }
    p.company_id.apply(&mut am.company_id);
    p.owner_id.apply(&mut am.owner_id);
    if let Some(v) = p.lifecycle_stage {
        am.lifecycle_stage = Set(v.as_str().to_string());
    }
    p.source.apply(&mut am.source);
    // Typed fields are checked before anything is written, and their typed copies
    // rewritten after.
    if let (Some(a), Some(fields)) = (&p.attributes, fields) {
        let json = a.clone().into_json();
        if let Some(map) = json.as_object() {
            super::fields::check(fields, map, &p.attributes_field)?;
        }
        am.attributes = Set(json);
    }
    (p.timezone.parse(|t| Ok(t.as_str().to_string()))?).apply(&mut am.timezone);
    if let Some(t) = &p.tags {
        am.tags = Set(json!(t.iter().map(Tag::as_str).collect::<Vec<_>>()));
    }
    am.updated_at = Set(clock::now());
    Ok(p.tags)
}

/// Writes the parsed fields onto `am` and, when tags change, the tag rows.
async fn write(
    db: &impl ConnectionTrait,
    ws: i64,
    mut am: contact::ActiveModel,
    p: ParsedContact,
) -> Result<contact::Model> {
    // The row before this write, for the webhook's changed fields (none for a new one).
    let row_before = if matches!(am.id, sea_orm::ActiveValue::NotSet) {
        None
    } else {
        sea_orm::TryIntoModel::<contact::Model>::try_into_model(am.clone()).ok()
    };
    // The stage before this write, for the lifecycle history (none for a new contact).
    let before = match (&am.id, &am.lifecycle_stage) {
        (sea_orm::ActiveValue::NotSet, _) => None,
        (_, sea_orm::ActiveValue::Unchanged(v) | sea_orm::ActiveValue::Set(v)) => Some(v.clone()),
        _ => None,
    };
    let fields = match &p.attributes {
        Some(_) => Some(super::fields::definitions(db, ws).await?),
        None => None,
    };
    let tags = fill(&mut am, p, fields.as_ref())?;
    let saved = if matches!(am.id, sea_orm::ActiveValue::NotSet) {
        am.insert(db).await?
    } else {
        am.update(db).await?
    };
    if let Some(t) = tags {
        replace_tags(db, ws, saved.id, &t).await?;
    }
    if let Some(fields) = fields {
        super::fields::sync(db, &fields, &saved).await?;
    }
    if before.as_deref() != Some(saved.lifecycle_stage.as_str()) {
        note_lifecycle(db, ws, saved.id, before.as_deref(), &saved.lifecycle_stage).await?;
    }
    let subject = outbox::Subject::contact(saved.id);
    match &row_before {
        None => outbox::created(db, ws, WebhookEventType::ContactCreated, subject, &saved).await?,
        Some(old) => {
            outbox::updated(
                db,
                ws,
                WebhookEventType::ContactUpdated,
                subject,
                old,
                &saved,
            )
            .await?
        }
    }
    Ok(saved)
}

/// Brings a contact back from the trash, telling webhooks (`contact.updated`, with
/// `deletedAt` among the changed fields).
pub async fn restore(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<contact::Model> {
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let before = records::get_with::<contact::Entity>(&tx, ws, id, Deleted::Include).await?;
    records::restore::<contact::Entity>(&tx, ws, id).await?;
    let after = records::get::<contact::Entity>(&tx, ws, id).await?;
    let subject = outbox::Subject::contact(id);
    outbox::updated(
        &tx,
        ws,
        WebhookEventType::ContactUpdated,
        subject,
        &before,
        &after,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Moves a contact to the trash, telling webhooks (`contact.deleted`).
pub async fn delete(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<()> {
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let row = records::get::<contact::Entity>(&tx, ws, id).await?;
    records::soft_delete::<contact::Entity>(&tx, ws, id).await?;
    let subject = outbox::Subject::contact(id);
    outbox::created(&tx, ws, WebhookEventType::ContactDeleted, subject, &row).await?;
    tx.commit().await?;
    Ok(())
}

/// Records a change of lifecycle stage (`from` is `None` for a new contact), which
/// funnels and sequence triggers read.
pub(crate) async fn note_lifecycle(
    db: &impl ConnectionTrait,
    ws: i64,
    contact_id: i64,
    from: Option<&str>,
    to: &str,
) -> Result<()> {
    rapport_schema::lifecycle_change::ActiveModel {
        workspace_id: Set(ws),
        contact_id: Set(contact_id),
        from_stage: Set(from.map(String::from)),
        to_stage: Set(to.into()),
        changed_at: Set(clock::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Replaces the tag rows of a contact (the JSON column holds the same list).
pub(crate) async fn replace_tags(
    db: &impl ConnectionTrait,
    ws: i64,
    contact_id: i64,
    tags: &[Tag],
) -> Result<()> {
    contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::ContactId.eq(contact_id))
        .exec(db)
        .await?;
    if !tags.is_empty() {
        contact_tag::Entity::insert_many(tags.iter().map(|t| contact_tag::ActiveModel {
            contact_id: Set(contact_id),
            tag: Set(t.as_str().to_string()),
            workspace_id: Set(ws),
        }))
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

fn new_row(ws: i64) -> contact::ActiveModel {
    let now = clock::now();
    contact::ActiveModel {
        workspace_id: Set(ws),
        first_name: Set(String::new()),
        last_name: Set(String::new()),
        other_emails: Set(json!([])),
        lifecycle_stage: Set(LifecycleStage::Lead.as_str().to_string()),
        tags: Set(json!([])),
        attributes: Set(json!({})),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

fn require_identity(p: &ParsedContact, field: &str) -> Result<()> {
    let has_name = p.first_name.as_deref().is_some_and(|s| !s.is_empty())
        || p.last_name.as_deref().is_some_and(|s| !s.is_empty());
    if has_name || matches!(p.email, Patch::Set(_)) {
        Ok(())
    } else {
        Err(EngineError::invalid(
            if field.is_empty() { "input" } else { field },
            "a contact needs a name or an email address",
        ))
    }
}

/// Creates a contact.
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    input: ContactInput,
) -> Result<contact::Model> {
    let ws = who.workspace_id;
    let p = parse(input, "")?;
    require_identity(&p, "")?;
    let tx = crate::platform::db::write(db).await?;
    check_references(&tx, ws, &p).await?;
    if let Patch::Set(e) = &p.email {
        ensure_email_free(&tx, ws, e, None).await?;
    }
    let saved = write(&tx, ws, new_row(ws), p).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Changes the given fields of a contact.
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    input: ContactInput,
) -> Result<contact::Model> {
    let ws = who.workspace_id;
    let p = parse(input, "")?;
    let tx = crate::platform::db::write(db).await?;
    let current = records::get::<contact::Entity>(&tx, ws, id).await?;
    check_references(&tx, ws, &p).await?;
    if let Patch::Set(e) = &p.email {
        ensure_email_free(&tx, ws, e, Some(id)).await?;
    }
    let saved = write(&tx, ws, current.into(), p).await?;
    tx.commit().await?;
    Ok(saved)
}

/// The people an erasure of `id` concerns: the contact and those earlier merged into it,
/// which were the same person. Deleted contacts count too: erasure is for good.
pub async fn erasure_set(db: &impl ConnectionTrait, ws: i64, id: i64) -> Result<Vec<i64>> {
    records::get_with::<contact::Entity>(db, ws, id, Deleted::Include).await?;
    let mut people = vec![id];
    let merged: Vec<i64> = contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::WorkspaceId.eq(ws))
        .filter(contact::Column::MergedIntoId.eq(id))
        .into_tuple()
        .all(db)
        .await?;
    people.extend(merged);
    Ok(people)
}

/// Locks the contacts about to be erased, first in the erasing transaction: a batch
/// storing about them ([`lock_present`]: plugin scores and runs) holds them until it
/// commits, so its rows are there to erase, and a later one finds them gone.
pub async fn lock_for_erasure(db: &impl ConnectionTrait, people: &[i64]) -> Result<()> {
    contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::Id.is_in(people.iter().copied()))
        .order_by_asc(contact::Column::Id)
        .lock(sea_orm::sea_query::LockType::Update)
        .into_tuple::<i64>()
        .all(db)
        .await?;
    Ok(())
}

/// Which of `ids` are contacts of the workspace, locked against deletion (and erasure,
/// see [`lock_for_erasure`]) until the caller's transaction ends. SQLite has no row locks; its
/// writes take turns anyway.
pub async fn lock_present(
    db: &impl ConnectionTrait,
    ws: i64,
    ids: Vec<i64>,
) -> Result<std::collections::HashSet<i64>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let found: Vec<i64> = contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::WorkspaceId.eq(ws))
        .filter(contact::Column::Id.is_in(ids))
        .order_by_asc(contact::Column::Id)
        .lock(sea_orm::sea_query::LockType::KeyShare)
        .into_tuple()
        .all(db)
        .await?;
    Ok(found.into_iter().collect())
}

/// Every email address the contacts were known by (primary and others), as stored.
pub async fn addresses_of(db: &impl ConnectionTrait, people: &[i64]) -> Result<Vec<String>> {
    let rows: Vec<(Option<String>, serde_json::Value)> = contact::Entity::find()
        .select_only()
        .column(contact::Column::Email)
        .column(contact::Column::OtherEmails)
        .filter(contact::Column::Id.is_in(people.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .flat_map(|(email, others)| {
            email
                .into_iter()
                .chain(crate::values::json_strings(&others))
        })
        .collect())
}

/// Right to erasure, for the CRM's own tables: the contacts' activities, tasks,
/// inquiries, events, orders and merge records go, then the contacts themselves (their
/// tags with them). Deals stay — they are the business's records — with the contact link
/// cleared by the database. The rest of a contact's data is other rooms' to erase: see
/// `contact_data`.
pub async fn erase_for_good(db: &impl ConnectionTrait, ws: i64, people: &[i64]) -> Result<()> {
    let ids = || people.iter().copied();
    activity::Entity::delete_many()
        .filter(activity::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    task::Entity::delete_many()
        .filter(task::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    inquiry::Entity::delete_many()
        .filter(inquiry::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    event::Entity::delete_many()
        .filter(event::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    order::Entity::delete_many()
        .filter(order::Column::ContactId.is_in(ids()))
        .exec(db)
        .await?;
    contact_merge::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(contact_merge::Column::MergedId.is_in(ids()))
                .add(contact_merge::Column::SurvivorId.is_in(ids())),
        )
        .exec(db)
        .await?;
    contact::Entity::delete_many()
        .filter(contact::Column::WorkspaceId.eq(ws))
        .filter(contact::Column::Id.is_in(ids()))
        .exec(db)
        .await?;
    Ok(())
}

/// What converting a lead into an opportunity asks for.
#[derive(Clone, Debug, Default)]
pub struct ConvertLeadInput {
    /// Name of the new deal; defaults to "<contact name> deal".
    pub deal_name: Option<String>,
    /// Pipeline for the deal; defaults to the workspace's first pipeline.
    pub pipeline_id: Option<i64>,
    /// Deal amount in major units.
    pub amount: Option<f64>,
    /// ISO currency of the amount; USD by default.
    pub currency: Option<String>,
    /// Creates (or finds by name) a company and links the contact, when it has none.
    pub company_name: Option<String>,
}

/// The rows a lead conversion produced.
pub struct Converted {
    /// The contact, now an opportunity.
    pub contact: contact::Model,
    /// The new deal.
    pub deal: rapport_schema::deal::Model,
    /// The contact's company, if it has one.
    pub company: Option<company::Model>,
}

/// Turns a lead (or qualified lead) into an opportunity with a deal, in one transaction.
pub async fn convert_lead(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    input: ConvertLeadInput,
) -> Result<Converted> {
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let current = records::get::<contact::Entity>(&tx, ws, id).await?;
    let stage = LifecycleStage::from_db(&current.lifecycle_stage);
    if !matches!(stage, LifecycleStage::Lead | LifecycleStage::Qualified) {
        return Err(EngineError::Conflict(format!(
            "contact {id} is already {stage}; only leads can be converted"
        )));
    }
    let mut company_id = current.company_id;
    if let (None, Some(name)) = (company_id, input.company_name.as_deref()) {
        let name = Text::parse("companyName", name, 200)?.into_string();
        let found = records::scoped::<company::Entity>(ws, Deleted::Exclude)
            .filter(company::Column::Name.eq(name.clone()))
            .one(&tx)
            .await?;
        company_id = Some(match found {
            Some(c) => c.id,
            None => {
                crate::crm::companies::insert_named(&tx, ws, &name)
                    .await?
                    .id
            }
        });
    }
    let full_name = format!("{} {}", current.first_name, current.last_name)
        .trim()
        .to_string();
    let deal_input = crate::crm::deals::DealInput {
        name: Some(input.deal_name.unwrap_or_else(|| {
            format!(
                "{} deal",
                if full_name.is_empty() {
                    "New"
                } else {
                    &full_name
                }
            )
        })),
        contact_id: Patch::Set(id),
        company_id: company_id.map(Patch::Set).unwrap_or_default(),
        pipeline_id: input.pipeline_id,
        amount: input.amount,
        currency: input.currency,
        ..Default::default()
    };
    let deal = crate::crm::deals::create_in(&tx, who, deal_input).await?;
    let before = current.clone();
    let mut am: contact::ActiveModel = current.into();
    am.lifecycle_stage = Set(LifecycleStage::Opportunity.as_str().to_string());
    am.company_id = Set(company_id);
    am.updated_at = Set(clock::now());
    let contact = am.update(&tx).await?;
    let subject = outbox::Subject::contact(id);
    outbox::updated(
        &tx,
        ws,
        WebhookEventType::ContactUpdated,
        subject,
        &before,
        &contact,
    )
    .await?;
    note_lifecycle(
        &tx,
        ws,
        id,
        Some(stage.as_str()),
        LifecycleStage::Opportunity.as_str(),
    )
    .await?;
    let company = match company_id {
        Some(c) => Some(records::get::<company::Entity>(&tx, ws, c).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(Converted {
        contact,
        deal,
        company,
    })
}
