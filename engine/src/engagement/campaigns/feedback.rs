//! What comes back from recipients: opens and clicks from tracking links, unsubscribes,
//! bounces — written on the campaign's messages, as events and as activities.

use super::*;

/// Records an open or click from a verified tracking link: counts on the message, an
/// event every time, an activity the first time. Returns where a click goes on to.
pub async fn track(db: &DatabaseConnection, claim: &Claim) -> Result<Option<String>> {
    let Some(msg) = claim.msg else {
        return Err(EngineError::invalid("token", "not a tracking link"));
    };
    let m = campaign_message::Entity::find_by_id(msg)
        .filter(campaign_message::Column::WorkspaceId.eq(claim.ws))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("CampaignMessage", msg))?;
    let now = clock::now();
    let (event_type, first, url) = match claim.action {
        Action::Open => ("email_opened", m.opened_at.is_none(), None),
        Action::Click => {
            let url = claim.url.clone().ok_or_else(|| {
                EngineError::invalid("token", "a click link without a destination")
            })?;
            ("email_clicked", m.clicked_at.is_none(), Some(url))
        }
        _ => return Err(EngineError::invalid("token", "not a tracking link")),
    };
    if claim.action == Action::Open && !first {
        // A message is opened once: mail clients and proxies fetch the pixel again and
        // again, and a replayed pixel must not write a row each time.
        return Ok(None);
    }
    let mut update = campaign_message::Entity::update_many()
        .filter(campaign_message::Column::Id.eq(msg))
        // A click proves an open even when images were blocked.
        .col_expr(
            campaign_message::Column::OpenedAt,
            Expr::col(campaign_message::Column::OpenedAt).if_null(now),
        );
    update = match claim.action {
        Action::Open => update.col_expr(
            campaign_message::Column::Opens,
            Expr::col(campaign_message::Column::Opens).add(1),
        ),
        _ => update
            .col_expr(
                campaign_message::Column::Clicks,
                Expr::col(campaign_message::Column::Clicks).add(1),
            )
            .col_expr(
                campaign_message::Column::ClickedAt,
                Expr::col(campaign_message::Column::ClickedAt).if_null(now),
            ),
    };
    let tx = crate::platform::db::write(db).await?;
    update.exec(&tx).await?;
    event::ActiveModel {
        workspace_id: Set(m.workspace_id),
        contact_id: Set(m.contact_id),
        event_type: Set(event_type.into()),
        properties: Set(json!({
            "campaign_id": m.campaign_id,
            "message_id": m.id,
            "variant_id": m.variant_id,
            "url": url,
        })),
        occurred_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    if first {
        let name: Option<String> = campaign::Entity::find_by_id(m.campaign_id)
            .select_only()
            .column(campaign::Column::Name)
            .into_tuple()
            .one(&tx)
            .await?;
        let name = name.unwrap_or_default();
        let (subject, body) = match &url {
            None => (format!("{OPENED_SUBJECT}{name}"), None),
            Some(u) => (format!("{CLICKED_SUBJECT}{name}"), Some(u.clone())),
        };
        activity::ActiveModel {
            workspace_id: Set(m.workspace_id),
            kind: Set(ActivityKind::Email.as_str().into()),
            direction: Set(Some(Direction::Inbound.as_str().into())),
            subject: Set(Some(subject)),
            body: Set(body),
            occurred_at: Set(now),
            contact_id: Set(Some(m.contact_id)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&tx)
        .await?;
    }
    let told = match claim.action {
        Action::Open => Some(WebhookEventType::MessageOpened),
        Action::Click => Some(WebhookEventType::MessageClicked),
        _ => None,
    };
    if let Some(event) = told {
        tracking::tell(
            &tx,
            m.workspace_id,
            m.contact_id,
            event,
            "CampaignMessage",
            &m,
            url.as_deref(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(url)
}

/// Marks the campaign message an unsubscribe link came from, for the campaign's stats.
pub async fn note_unsubscribe(db: &impl ConnectionTrait, claim: &Claim) -> Result<()> {
    if let Some(msg) = claim.msg {
        campaign_message::Entity::update_many()
            .col_expr(
                campaign_message::Column::UnsubscribedAt,
                Expr::col(campaign_message::Column::UnsubscribedAt).if_null(clock::now()),
            )
            .filter(campaign_message::Column::Id.eq(msg))
            .filter(campaign_message::Column::WorkspaceId.eq(claim.ws))
            .exec(db)
            .await?;
        let m = campaign_message::Entity::find_by_id(msg)
            .filter(campaign_message::Column::WorkspaceId.eq(claim.ws))
            .one(db)
            .await?;
        if let Some(m) = m {
            tracking::tell(
                db,
                m.workspace_id,
                m.contact_id,
                WebhookEventType::MessageUnsubscribed,
                "CampaignMessage",
                &m,
                None,
            )
            .await?;
        }
    }
    Ok(())
}

/// Marks the latest sent campaign message to a contact as bounced.
pub async fn note_bounce(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    contact_id: i64,
) -> Result<()> {
    let latest: Option<i64> = campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::Id)
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::ContactId.eq(contact_id))
        .filter(campaign_message::Column::State.eq(MessageState::Sent.as_str()))
        .order_by_desc(campaign_message::Column::SentAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    if let Some(id) = latest {
        campaign_message::Entity::update_many()
            .col_expr(
                campaign_message::Column::State,
                Expr::value(MessageState::Bounced.as_str()),
            )
            .col_expr(
                campaign_message::Column::BouncedAt,
                Expr::value(clock::now()),
            )
            .filter(campaign_message::Column::Id.eq(id))
            .exec(db)
            .await?;
        if let Some(m) = campaign_message::Entity::find_by_id(id).one(db).await? {
            tracking::tell(
                db,
                workspace_id,
                contact_id,
                WebhookEventType::MessageBounced,
                "CampaignMessage",
                &m,
                None,
            )
            .await?;
        }
    }
    Ok(())
}
