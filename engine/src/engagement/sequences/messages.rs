//! The email sequence steps sent: listing them, and recording their opens and clicks.

use super::*;

/// The email of enrollments, oldest first.
pub async fn messages_of(
    db: &impl ConnectionTrait,
    ws: i64,
    enrollment_ids: &[i64],
) -> Result<Vec<sequence_message::Model>> {
    Ok(sequence_message::Entity::find()
        .filter(sequence_message::Column::WorkspaceId.eq(ws))
        .filter(sequence_message::Column::EnrollmentId.is_in(enrollment_ids.iter().copied()))
        .order_by_asc(sequence_message::Column::Id)
        .all(db)
        .await?)
}

/// Records an open or click of a sequence email from a verified tracking link: on the
/// message (what branches read) and as an event. Returns where a click goes on to.
pub async fn track(db: &DatabaseConnection, claim: &Claim, id: i64) -> Result<Option<String>> {
    let m = sequence_message::Entity::find_by_id(id)
        .filter(sequence_message::Column::WorkspaceId.eq(claim.ws))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("SequenceMessage", id))?;
    let now = crate::clock::now();
    let (event_type, url) = match claim.action {
        LinkAction::Open => ("email_opened", None),
        LinkAction::Click => (
            "email_clicked",
            Some(claim.url.clone().ok_or_else(|| {
                EngineError::invalid("token", "a click link without a destination")
            })?),
        ),
        _ => return Err(EngineError::invalid("token", "not a tracking link")),
    };
    if url.is_none() && m.opened_at.is_some() {
        // Opened once is opened: a replayed pixel writes nothing.
        return Ok(None);
    }
    let mut update = sequence_message::Entity::update_many()
        .filter(sequence_message::Column::Id.eq(id))
        // A click proves an open even when images were blocked.
        .col_expr(
            sequence_message::Column::OpenedAt,
            Expr::col(sequence_message::Column::OpenedAt).if_null(now),
        );
    update = if url.is_some() {
        update
            .col_expr(
                sequence_message::Column::Clicks,
                Expr::col(sequence_message::Column::Clicks).add(1),
            )
            .col_expr(
                sequence_message::Column::ClickedAt,
                Expr::col(sequence_message::Column::ClickedAt).if_null(now),
            )
    } else {
        update.col_expr(
            sequence_message::Column::Opens,
            Expr::col(sequence_message::Column::Opens).add(1),
        )
    };
    let tx = crate::platform::db::write(db).await?;
    update.exec(&tx).await?;
    rapport_schema::event::ActiveModel {
        workspace_id: Set(m.workspace_id),
        contact_id: Set(m.contact_id),
        event_type: Set(event_type.into()),
        properties: Set(json!({
            "sequence_id": m.sequence_id,
            "sequence_message_id": m.id,
            "step": m.step_key,
            "url": url,
        })),
        occurred_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let event = if url.is_some() {
        WebhookEventType::MessageClicked
    } else {
        WebhookEventType::MessageOpened
    };
    tracking::tell(
        &tx,
        m.workspace_id,
        m.contact_id,
        event,
        "SequenceMessage",
        &m,
        url.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(url)
}
