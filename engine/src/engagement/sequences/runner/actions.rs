//! The steps that change the CRM: `updateContact`, `createTask`, and `enroll` (into
//! another sequence).

use super::*;

/// The update-contact step, in the step's transaction.
pub(super) async fn update_contact(
    tx: &impl ConnectionTrait,
    b: &Batch<'_>,
    contact: contact::Model,
    action: &Action,
) -> Result<contact::Model> {
    let Action::UpdateContact {
        add_tags,
        remove_tags,
        attributes,
        lifecycle_stage,
        owner_id,
        ..
    } = action
    else {
        return Ok(contact);
    };
    let mut tags: Vec<String> = contact
        .tags
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let before = tags.clone();
    for t in add_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags.retain(|t| !remove_tags.contains(t));
    let mut attrs = contact.attributes.clone();
    let fields = if attributes.is_empty() {
        None
    } else {
        Some(crate::crm::fields::definitions(tx, b.ws).await?)
    };
    if let Some(fields) = &fields {
        if !attrs.is_object() {
            attrs = Value::Object(Default::default());
        }
        let map = attrs.as_object_mut().expect("an object");
        for (k, v) in attributes {
            // A field declared after the sequence was saved may not take this value: the
            // step leaves that attribute as it is rather than stalling the contact.
            if let Some(Err(why)) = fields.get(k).map(|f| f.typed(v)) {
                tracing::warn!(attribute = %k, reason = %why, "a sequence step's value does not fit the field");
                continue;
            }
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    let old_stage = contact.lifecycle_stage.clone();
    let row_before = contact.clone();
    let mut am: contact::ActiveModel = contact.into();
    am.tags = Set(Value::from(tags.clone()));
    am.attributes = Set(attrs);
    if let Some(stage) = lifecycle_stage {
        am.lifecycle_stage = Set(LifecycleStage::parse("lifecycleStage", stage)?
            .as_str()
            .into());
    }
    if let Some(owner) = owner_id {
        am.owner_id = Set(Some(*owner));
    }
    am.updated_at = Set(crate::clock::now());
    let saved = am.update(tx).await?;
    crate::platform::outbox::updated(
        tx,
        saved.workspace_id,
        crate::values::WebhookEventType::ContactUpdated,
        crate::platform::outbox::Subject::contact(saved.id),
        &row_before,
        &saved,
    )
    .await?;
    if let Some(fields) = &fields {
        crate::crm::fields::sync(tx, fields, &saved).await?;
    }
    if tags != before {
        let parsed: Vec<Tag> = tags
            .iter()
            .filter_map(|t| Tag::parse("tag", t).ok())
            .collect();
        crate::crm::contacts::replace_tags(tx, b.ws, saved.id, &parsed).await?;
    }
    if saved.lifecycle_stage != old_stage {
        crate::crm::contacts::note_lifecycle(
            tx,
            b.ws,
            saved.id,
            Some(&old_stage),
            &saved.lifecycle_stage,
        )
        .await?;
    }
    Ok(saved)
}

/// The create-task step: a task for the contact's owner, due in some days.
pub(super) async fn create_task(
    tx: &impl ConnectionTrait,
    b: &Batch<'_>,
    contact: &contact::Model,
    title: &str,
    due_in_days: Option<u32>,
) -> Result<()> {
    let vars = templates::context(
        contact,
        contact.company_id.and_then(|c| b.firms.get(&c)),
        b.personal.get(&contact.id),
        &templates::PageLinks::NONE,
    );
    let title = templates::render(
        &TemplateParts {
            subject: title.into(),
            html: String::new(),
            text: String::new(),
        },
        &vars,
    )
    .map(|p| p.subject)
    .unwrap_or_else(|_| title.to_string());
    let now = crate::clock::now();
    task::ActiveModel {
        workspace_id: Set(b.ws),
        title: Set(title.chars().take(300).collect()),
        due_at: Set(due_in_days.map(|d| b.now + Duration::days(d as i64))),
        status: Set(TaskStatus::Open.as_str().into()),
        assignee_id: Set(contact.owner_id),
        contact_id: Set(Some(contact.id)),
        deal_id: Set(None),
        completed_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(tx)
    .await?;
    Ok(())
}

/// The enroll step: the contact enters another active sequence (if that one takes it).
pub(super) async fn enroll_elsewhere(
    tx: &impl ConnectionTrait,
    b: &Batch<'_>,
    cur: &Cursor,
    name: &str,
) -> Result<()> {
    let Some(other) = rapport_schema::sequence::Entity::find()
        .filter(rapport_schema::sequence::Column::WorkspaceId.eq(b.ws))
        .filter(rapport_schema::sequence::Column::Name.eq(name))
        .one(tx)
        .await?
    else {
        tracing::warn!(sequence = name, "enroll step names a sequence that is gone");
        return Ok(());
    };
    if super::super::status(&other) != SequenceStatus::Active {
        return Ok(());
    }
    let other = super::super::get(tx, b.ws, other.id).await?;
    super::super::enroll_in(
        tx,
        &other,
        &[cur.row.contact_id],
        &format!("sequence:{}", cur.row.sequence_id),
        b.now,
    )
    .await?;
    Ok(())
}
