//! The `sendEmail` step: consent, suppression, quiet hours and the frequency cap, the
//! claimed message row, rendering, tracking, sending, and what a bounce or deferral means.

use super::*;

/// What became of an email step.
pub(super) enum Mail {
    /// Accepted by the server; the message row is marked sent with the move.
    Sent(i64),
    /// Not sent and never will be (skipped, failed, or sent by an earlier run).
    NotSent,
    /// Not now: quiet hours, the frequency cap, a deferring server.
    Later(DateTime<Utc>, String),
    /// The address bounced for good.
    Exit(String),
}

/// When the frequency cap lets the next marketing email go, if it holds now.
pub(super) async fn capped_until(
    db: &DatabaseConnection,
    ws: i64,
    contact_id: i64,
    cap: definition::FrequencyCap,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let window = Duration::days(cap.days as i64);
    let since = now - window;
    let max = cap.max as u64;
    let mut sent: Vec<DateTime<Utc>> = sequence_message::Entity::find()
        .select_only()
        .column(sequence_message::Column::SentAt)
        .filter(sequence_message::Column::WorkspaceId.eq(ws))
        .filter(sequence_message::Column::ContactId.eq(contact_id))
        .filter(sequence_message::Column::SentAt.gt(since))
        .order_by_desc(sequence_message::Column::SentAt)
        .limit(max)
        .into_tuple::<Option<DateTime<Utc>>>()
        .all(db)
        .await?
        .into_iter()
        .flatten()
        .collect();
    sent.extend(
        campaign_message::Entity::find()
            .select_only()
            .column(campaign_message::Column::SentAt)
            .filter(campaign_message::Column::WorkspaceId.eq(ws))
            .filter(campaign_message::Column::ContactId.eq(contact_id))
            .filter(campaign_message::Column::SentAt.gt(since))
            .order_by_desc(campaign_message::Column::SentAt)
            .limit(max)
            .into_tuple::<Option<DateTime<Utc>>>()
            .all(db)
            .await?
            .into_iter()
            .flatten(),
    );
    if (sent.len() as u64) < max {
        return Ok(None);
    }
    sent.sort_unstable_by(|a, b| b.cmp(a));
    // The window frees a place when the max-th latest email leaves it.
    Ok(Some(sent[max as usize - 1] + window + Duration::seconds(1)))
}

pub(super) async fn message_state(
    db: &impl ConnectionTrait,
    id: i64,
    from: MessageState,
    to: MessageState,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut update = sequence_message::Entity::update_many()
        .col_expr(sequence_message::Column::State, Expr::value(to.as_str()))
        .col_expr(sequence_message::Column::Reason, Expr::value(reason))
        .filter(sequence_message::Column::Id.eq(id))
        .filter(sequence_message::Column::State.eq(from.as_str()));
    if to == MessageState::Sending {
        update = update.col_expr(sequence_message::Column::ClaimedAt, Expr::value(now));
    }
    Ok(update.exec(db).await?.rows_affected > 0)
}

pub(super) async fn mark_sent(
    tx: &impl ConnectionTrait,
    id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    sequence_message::Entity::update_many()
        .col_expr(
            sequence_message::Column::State,
            Expr::value(MessageState::Sent.as_str()),
        )
        .col_expr(sequence_message::Column::SentAt, Expr::value(now))
        .filter(sequence_message::Column::Id.eq(id))
        .filter(sequence_message::Column::State.eq(MessageState::Sending.as_str()))
        .exec(tx)
        .await?;
    if let Some(m) = sequence_message::Entity::find_by_id(id).one(tx).await? {
        crate::engagement::tracking::tell(
            tx,
            m.workspace_id,
            m.contact_id,
            crate::values::WebhookEventType::MessageSent,
            "SequenceMessage",
            &m,
            None,
        )
        .await?;
    }
    Ok(())
}

/// The email step: limits, the exactly-once claim, consent at send time, the send.
pub(super) async fn send_email(
    b: &Batch<'_>,
    def: &Definition,
    cur: &Cursor,
    contact: &contact::Model,
    template: &str,
) -> Result<Mail> {
    let db = &b.ctx.db;
    let claim_timeout = Duration::from_std(b.ctx.outbound.claim_timeout).unwrap_or_default();
    let tz = definition::zone(contact.timezone.as_deref());
    if let Some(q) = &def.quiet_hours
        && let Some(until) = definition::quiet_until(q, b.now, tz)
    {
        return Ok(Mail::Later(until, "quiet hours".into()));
    }
    if let Some(cap) = def.frequency_cap
        && let Some(until) = capped_until(db, b.ws, contact.id, cap, b.now).await?
    {
        return Ok(Mail::Later(until, "frequency cap".into()));
    }
    sequence_message::Entity::insert(sequence_message::ActiveModel {
        workspace_id: Set(b.ws),
        sequence_id: Set(cur.row.sequence_id),
        enrollment_id: Set(cur.row.id),
        position: Set(cur.row.position),
        step_key: Set(cur.row.step_key.clone()),
        contact_id: Set(contact.id),
        state: Set(MessageState::Queued.as_str().into()),
        opens: Set(0),
        clicks: Set(0),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            sequence_message::Column::EnrollmentId,
            sequence_message::Column::Position,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let m = sequence_message::Entity::find()
        .filter(sequence_message::Column::EnrollmentId.eq(cur.row.id))
        .filter(sequence_message::Column::Position.eq(cur.row.position))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("SequenceMessage", cur.row.id))?;
    match MessageState::from_db(&m.state) {
        MessageState::Queued => {}
        MessageState::Sending if m.claimed_at.is_some_and(|at| at > b.now - claim_timeout) => {
            // Perhaps still in flight in another worker: look again once it cannot be.
            let settled = m.claimed_at.unwrap_or(b.now) + claim_timeout;
            return Ok(Mail::Later(
                settled,
                "another worker may be sending this email".into(),
            ));
        }
        MessageState::Sending => {
            message_state(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Unknown,
                Some("interrupted before the mail server answered; not sent again".into()),
                b.now,
            )
            .await?;
            return Ok(Mail::NotSent);
        }
        MessageState::Sent => {
            // Sent, but the move past the step was lost: move now.
            return Ok(Mail::NotSent);
        }
        _ => return Ok(Mail::NotSent),
    }
    if !message_state(
        db,
        m.id,
        MessageState::Queued,
        MessageState::Sending,
        None,
        b.now,
    )
    .await?
    {
        // Another worker claimed it a moment ago: its outcome decides.
        return Ok(Mail::Later(
            b.now + claim_timeout,
            "another worker may be sending this email".into(),
        ));
    }
    let skip = |why: String| async move {
        message_state(
            db,
            m.id,
            MessageState::Sending,
            MessageState::Skipped,
            Some(why),
            b.now,
        )
        .await?;
        Ok::<_, EngineError>(Mail::NotSent)
    };
    let Some(to) = contact
        .email
        .as_deref()
        .and_then(|e| EmailAddress::parse("email", e).ok())
    else {
        return skip("the contact has no email address".into()).await;
    };
    if let Decision::Blocked(why) =
        consent::may_email_to(db, b.ws, contact.id, &to, ConsentPurpose::Marketing).await?
    {
        return skip(why).await;
    }
    if let Some(key) = &def.topic {
        match crate::engagement::topics::by_key(db, b.ws, key).await? {
            None => return skip(format!("the topic '{key}' no longer exists")).await,
            Some(t) if !crate::engagement::topics::allows(db, b.ws, contact.id, t.id).await? => {
                return skip(format!("the contact opted out of the topic '{key}'")).await;
            }
            Some(_) => {}
        }
    }
    let Some(saved) = b.templates.get(template) else {
        return skip(format!("the template '{template}' was deleted")).await;
    };
    let links = Links {
        signer: &b.signer,
        base: b.ctx.outbound.public_url.trim_end_matches('/'),
        workspace_id: b.ws,
        messages: MessageKind::Sequence,
    };
    let unsubscribe = links.unsubscribe(contact.id, m.id);
    let firm = contact.company_id.and_then(|c| b.firms.get(&c));
    let parts = match templates::render(
        &TemplateParts {
            subject: saved.subject.clone(),
            html: saved.html.clone(),
            text: saved.text.clone(),
        },
        &templates::context(
            contact,
            firm,
            b.personal.get(&contact.id),
            &templates::PageLinks {
                unsubscribe: &unsubscribe,
                preferences: &links.preferences(contact.id),
            },
        ),
    ) {
        Ok(p) => p,
        Err(e) => {
            message_state(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Failed,
                Some(e.to_string()),
                b.now,
            )
            .await?;
            return Ok(Mail::NotSent);
        }
    };
    let html = track_html(
        &parts.html,
        |url| links.click(contact.id, m.id, url),
        &links.open(contact.id, m.id),
        &unsubscribe,
    );
    let message = email::build(&email::Outgoing {
        from: EmailAddress::parse("fromEmail", &def.from_email)?,
        from_name: def.from_name.clone(),
        to: to.clone(),
        subject: parts.subject,
        html,
        text: parts.text,
        key: format!("sequence/{}/{}", cur.row.id, cur.row.position),
        unsubscribe_url: Some(unsubscribe),
    })?;
    match b.ctx.outbound.mailer.deliver(message).await {
        Delivery::Sent => Ok(Mail::Sent(m.id)),
        Delivery::Deferred(why) => {
            // The server did not take it, so putting it back cannot cause a duplicate.
            message_state(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Queued,
                Some(why.clone()),
                b.now,
            )
            .await?;
            Ok(Mail::Later(b.now + DEFER, why))
        }
        Delivery::Rejected(why, Some(code)) if MAILBOX_GONE.contains(&code) => {
            message_state(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Bounced,
                Some(why),
                b.now,
            )
            .await?;
            suppression::add(
                db,
                b.ws,
                &suppression::email_hash(&to),
                SuppressionReason::HardBounce,
                Some(format!(
                    "SMTP {code} when sending sequence {}",
                    cur.row.sequence_id
                )),
            )
            .await?;
            Ok(Mail::Exit("bounced".into()))
        }
        Delivery::Rejected(why, _) => {
            message_state(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Failed,
                Some(why),
                b.now,
            )
            .await?;
            Ok(Mail::NotSent)
        }
        Delivery::Unknown(why) => {
            message_state(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Unknown,
                Some(format!(
                    "{why}; the outcome is unknown, so it is not sent again"
                )),
                b.now,
            )
            .await?;
            Ok(Mail::NotSent)
        }
    }
}
