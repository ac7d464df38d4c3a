//! Branch and goal conditions, evaluated for one enrollment's contact.

use super::*;

/// Evaluates a condition for the enrollment's contact.
pub(super) fn eval<'a>(
    b: &'a Batch<'_>,
    cur: &'a Cursor,
    contact: &'a contact::Model,
    c: &'a Condition,
) -> BoxFuture<'a, Result<bool>> {
    Box::pin(async move {
        let db = &b.ctx.db;
        Ok(match c {
            Condition::Opened(step) | Condition::Clicked(step) => {
                let column = if matches!(c, Condition::Opened(_)) {
                    sequence_message::Column::OpenedAt
                } else {
                    sequence_message::Column::ClickedAt
                };
                sequence_message::Entity::find()
                    .filter(sequence_message::Column::EnrollmentId.eq(cur.row.id))
                    .filter(sequence_message::Column::StepKey.eq(step.as_str()))
                    .filter(column.is_not_null())
                    .count(db)
                    .await?
                    > 0
            }
            Condition::Replied(wanted) => {
                let replied = b
                    .standing
                    .get(&contact.id)
                    .and_then(|s| s.last_reply)
                    .is_some_and(|at| at >= cur.row.enrolled_at);
                replied == *wanted
            }
            Condition::Lifecycle(stage) => {
                LifecycleStage::from_db(&contact.lifecycle_stage) == LifecycleStage::from_db(stage)
            }
            Condition::Tag(tag) => contact
                .tags
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t.as_str() == Some(tag.as_str()))),
            Condition::Attribute(test) => {
                let v = contact.attributes.get(&test.name);
                let number = v.and_then(Value::as_f64);
                test.exists
                    .is_none_or(|e| e == v.is_some_and(|v| !v.is_null()))
                    && test.equals.as_ref().is_none_or(|want| v == Some(want))
                    && test.gte.is_none_or(|g| number.is_some_and(|n| n >= g))
                    && test.lte.is_none_or(|l| number.is_some_and(|n| n <= l))
            }
            Condition::Score(test) => score_of(db, b.ws, contact.id, &test.model)
                .await?
                .is_some_and(|s| s >= test.gte),
            Condition::Event(test) => {
                event::Entity::find()
                    .filter(event::Column::WorkspaceId.eq(b.ws))
                    .filter(event::Column::ContactId.eq(contact.id))
                    .filter(event::Column::EventType.eq(test.event_type.as_str()))
                    .filter(
                        event::Column::OccurredAt
                            .gte(b.now - Duration::days(test.within_days as i64)),
                    )
                    .count(db)
                    .await?
                    > 0
            }
            Condition::All(cs) => {
                for c in cs {
                    if !eval(b, cur, contact, c).await? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Any(cs) => {
                for c in cs {
                    if eval(b, cur, contact, c).await? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::Not(c) => !eval(b, cur, contact, c).await?,
        })
    })
}

/// The contact's current score from a built-in model kind or `plugin:NAME`.
pub(super) async fn score_of(
    db: &DatabaseConnection,
    ws: i64,
    contact_id: i64,
    model: &str,
) -> Result<Option<f64>> {
    if let Some(name) = model.strip_prefix("plugin:") {
        let Some(p) = plugin::Entity::find()
            .filter(plugin::Column::WorkspaceId.eq(ws))
            .filter(plugin::Column::Name.eq(name))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        return Ok(plugin_score::Entity::find()
            .filter(plugin_score::Column::PluginId.eq(p.id))
            .filter(plugin_score::Column::ContactId.eq(contact_id))
            .one(db)
            .await?
            .map(|s| s.score));
    }
    Ok(score::Entity::find()
        .filter(score::Column::WorkspaceId.eq(ws))
        .filter(score::Column::Kind.eq(model))
        .filter(score::Column::SubjectId.eq(contact_id))
        .one(db)
        .await?
        .map(|s| s.score))
}
