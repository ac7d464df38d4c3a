//! Transactional email: one message to one contact from a saved template — a receipt, a
//! welcome, a password hint — asked for by an app outside any campaign. It goes through
//! the job queue, the consent rules of its purpose, the same templates (with
//! [`templates::personal`]) and the same tracking as campaign mail.
//!
//! The client's idempotency key is unique per workspace: asking again with the same key
//! returns the first message instead of sending a second, so a retried request (a
//! timeout, a redelivered webhook) never mails a customer twice.

use chrono::{DateTime, Utc};
use rapport_schema::{contact, email_template, event, transactional_message as message};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;

use super::outbound::Context;
use super::templates::{self, TemplateParts};
use super::tracking::{Links, MAILBOX_GONE, MessageKind, track_html};
use super::{consent, consent::Decision, suppression};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::email::{self, Delivery};
use crate::platform::links::{self, Action, Claim};
use crate::platform::queue::{Job, Queue};
use crate::platform::records::{self, Deleted};
use crate::values::{
    ConsentPurpose, EmailAddress, MessageState, Scope, SuppressionReason, Text, WebhookEventType,
};

/// A key for one send: a client's, 1 to 200 visible ASCII characters (a UUID,
/// `order-123/receipt`), or one of Rapport's own sends ([`IdempotencyKey::of_action`]),
/// under a prefix clients may not use, so a client's key never finds Rapport's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 200;
    /// The prefix of the keys of Rapport's own sends.
    pub const RESERVED: &str = "rapport:";

    /// Parses a client's key; `field` names the input in errors.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if !(1..=Self::MAX_LEN).contains(&raw.len()) || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EngineError::invalid(
                field,
                format!(
                    "an idempotency key is 1 to {} visible ASCII characters without spaces",
                    Self::MAX_LEN
                ),
            ));
        }
        if raw.starts_with(Self::RESERVED) {
            return Err(EngineError::invalid(
                field,
                format!(
                    "keys starting with {:?} are Rapport's own; choose another",
                    Self::RESERVED
                ),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    /// The key of the email sent for an accepted plugin action: accepting again finds it.
    pub fn of_action(action_id: i64) -> Self {
        Self(format!("{}plugin-action:{action_id}", Self::RESERVED))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One email to send.
#[derive(Clone, Debug)]
pub struct SendEmailInput {
    /// The recipient.
    pub contact_id: i64,
    /// The saved template.
    pub template_id: i64,
    /// Whose consent rules apply: transactional mail needs no opt-in but stops at a
    /// withdrawal or a suppressed address; marketing needs a granted opt-in.
    pub purpose: ConsentPurpose,
    /// The key of this send.
    pub idempotency_key: IdempotencyKey,
    /// The sender's address.
    pub from_email: String,
    /// The sender's display name.
    pub from_name: Option<String>,
}

/// What asking to send gave.
#[derive(Clone, Debug)]
pub struct Queued {
    /// The message (the first one, when the key was used before).
    pub message: message::Model,
    /// Whether the key was used before, so nothing new was queued.
    pub replayed: bool,
}

/// Queues one email (write scope). The same key again returns the first message, as long
/// as it asked for the same contact and template; another request under a used key is
/// refused.
pub async fn send(
    db: &DatabaseConnection,
    queue: &Queue,
    who: &Principal,
    input: SendEmailInput,
) -> Result<Queued> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let key = &input.idempotency_key;
    let from = EmailAddress::parse("fromEmail", &input.from_email)?;
    let from_name = Text::parse_opt("fromName", input.from_name.as_deref(), 200)?;
    if let Some(first) = by_key(db, ws, key).await? {
        return replay(queue, first, &input).await;
    }
    records::ensure_exists::<contact::Entity>(db, ws, input.contact_id).await?;
    records::ensure_exists::<email_template::Entity>(db, ws, input.template_id).await?;
    let now = clock::now();
    let inserted = message::ActiveModel {
        workspace_id: Set(ws),
        contact_id: Set(input.contact_id),
        template_id: Set(input.template_id),
        idempotency_key: Set(key.as_str().to_string()),
        purpose: Set(input.purpose.as_str().to_string()),
        from_email: Set(from.as_str().to_string()),
        from_name: Set(from_name.map(Text::into_string)),
        state: Set(MessageState::Queued.as_str().to_string()),
        reason: Set(None),
        created_at: Set(now),
        claimed_at: Set(None),
        sent_at: Set(None),
        opened_at: Set(None),
        clicked_at: Set(None),
        opens: Set(0),
        clicks: Set(0),
        ..Default::default()
    }
    .insert(db)
    .await;
    let row = match inserted {
        Ok(row) => row,
        // Two requests with one key at once: the unique index lets one in; the other
        // answers with it.
        Err(e) => match by_key(db, ws, key).await? {
            Some(first) => return replay(queue, first, &input).await,
            None => return Err(e.into()),
        },
    };
    if let Err(e) = push(queue, &row).await {
        // Not queued, so not kept: the client's retry with the same key starts afresh.
        message::Entity::delete_by_id(row.id).exec(db).await?;
        return Err(e);
    }
    tracing::info!(
        message = row.id,
        contact = row.contact_id,
        "transactional email queued"
    );
    Ok(Queued {
        message: row,
        replayed: false,
    })
}

async fn by_key(
    db: &impl ConnectionTrait,
    ws: i64,
    key: &IdempotencyKey,
) -> Result<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::WorkspaceId.eq(ws))
        .filter(message::Column::IdempotencyKey.eq(key.as_str()))
        .one(db)
        .await?)
}

async fn push(queue: &Queue, m: &message::Model) -> Result<()> {
    queue
        .push(
            Job::SendTransactional {
                workspace_id: m.workspace_id,
                message_id: m.id,
            },
            None,
        )
        .await
}

/// A message still queued this long after it was asked for lost its job (a process
/// stopped between saving and queuing it, or the job ran out of attempts).
const STALE: chrono::Duration = chrono::Duration::minutes(10);

async fn replay(queue: &Queue, first: message::Model, input: &SendEmailInput) -> Result<Queued> {
    if first.contact_id != input.contact_id || first.template_id != input.template_id {
        return Err(EngineError::Conflict(format!(
            "the idempotency key was used for message {} to another contact or template",
            first.id
        )));
    }
    // The client's retry queues the job again; the send's claim keeps it to one email.
    if first.state == MessageState::Queued.as_str() && clock::now() - first.created_at > STALE {
        push(queue, &first).await?;
    }
    Ok(Queued {
        message: first,
        replayed: true,
    })
}

/// One message of the caller's workspace.
pub async fn get(db: &impl ConnectionTrait, who: &Principal, id: i64) -> Result<message::Model> {
    message::Entity::find_by_id(id)
        .filter(message::Column::WorkspaceId.eq(who.workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("TransactionalEmail", id))
}

/// Moves a message from `from` to `to`; false when another worker got there first.
async fn settle(
    db: &impl ConnectionTrait,
    id: i64,
    from: MessageState,
    to: MessageState,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut update = message::Entity::update_many()
        .col_expr(message::Column::State, Expr::value(to.as_str()))
        .col_expr(message::Column::Reason, Expr::value(reason))
        .filter(message::Column::Id.eq(id))
        .filter(message::Column::State.eq(from.as_str()));
    match to {
        MessageState::Sending => {
            update = update.col_expr(message::Column::ClaimedAt, Expr::value(now));
        }
        MessageState::Sent => {
            update = update.col_expr(message::Column::SentAt, Expr::value(now));
        }
        _ => {}
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// Job: sends one queued message. A message another worker is sending is left to it,
/// unless that worker's claim is older than the claim timeout: then its outcome is
/// unknown and it is not sent again.
pub async fn deliver(ctx: &Context, ws: i64, id: i64) -> Result<()> {
    let db = &ctx.db;
    let now = ctx.clock.now();
    let m = message::Entity::find_by_id(id)
        .filter(message::Column::WorkspaceId.eq(ws))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("TransactionalEmail", id))?;
    let state = MessageState::from_db(&m.state);
    if state == MessageState::Sending
        && m.claimed_at.is_some_and(|at| {
            now - at > chrono::Duration::from_std(ctx.outbound.claim_timeout).unwrap_or_default()
        })
    {
        settle(
            db,
            id,
            MessageState::Sending,
            MessageState::Unknown,
            Some(
                "the worker sending it stopped; the outcome is unknown, so it is not sent again"
                    .into(),
            ),
            now,
        )
        .await?;
        return Ok(());
    }
    if state != MessageState::Queued
        || !settle(
            db,
            id,
            MessageState::Queued,
            MessageState::Sending,
            None,
            now,
        )
        .await?
    {
        return Ok(());
    }
    match send_claimed(ctx, ws, &m, now).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Nothing reached the mail server: back in the queue, and the job retries.
            settle(
                db,
                id,
                MessageState::Sending,
                MessageState::Queued,
                Some(e.to_string()),
                now,
            )
            .await?;
            Err(e)
        }
    }
}

/// Sends a message this worker claimed. An error means nothing was handed to the mail
/// server (its answers are settled here).
async fn send_claimed(
    ctx: &Context,
    ws: i64,
    m: &message::Model,
    now: DateTime<Utc>,
) -> Result<()> {
    let db = &ctx.db;
    let id = m.id;
    let skip = |why: String| {
        settle(
            db,
            id,
            MessageState::Sending,
            MessageState::Skipped,
            Some(why),
            now,
        )
    };
    let person =
        records::get_with::<contact::Entity>(db, ws, m.contact_id, Deleted::Include).await?;
    if person.deleted_at.is_some() {
        skip("the contact was deleted".into()).await?;
        return Ok(());
    }
    let Some(to) = person
        .email
        .as_deref()
        .and_then(|e| EmailAddress::parse("email", e).ok())
    else {
        skip("the contact has no email address".into()).await?;
        return Ok(());
    };
    let purpose = ConsentPurpose::from_db(&m.purpose);
    if let Decision::Blocked(why) = consent::may_email_to(db, ws, person.id, &to, purpose).await? {
        skip(why).await?;
        return Ok(());
    }
    let template =
        records::get_with::<email_template::Entity>(db, ws, m.template_id, Deleted::Include)
            .await?;
    let signer = links::signer(db, ws).await?;
    let links = Links {
        signer: &signer,
        base: ctx.outbound.public_url.trim_end_matches('/'),
        workspace_id: ws,
        messages: MessageKind::Transactional,
    };
    let unsubscribe = links.unsubscribe(person.id, id);
    let parts = TemplateParts {
        subject: template.subject.clone(),
        html: template.html.clone(),
        text: template.text.clone(),
    };
    let needs = templates::Needs::of_parts([&parts]);
    let personal = templates::personal::load(db, ws, &[&person], needs).await?;
    let firm = match person.company_id {
        Some(c) => {
            records::get_with::<rapport_schema::company::Entity>(db, ws, c, Deleted::Include)
                .await
                .ok()
        }
        None => None,
    };
    let preferences = links.preferences(person.id);
    let pages = templates::PageLinks {
        unsubscribe: &unsubscribe,
        preferences: &preferences,
    };
    let variables = templates::context(&person, firm.as_ref(), personal.get(&person.id), &pages);
    let parts = match templates::render_blocking(parts, variables).await {
        Ok(p) => p,
        Err(e) => {
            settle(
                db,
                id,
                MessageState::Sending,
                MessageState::Failed,
                Some(e.to_string()),
                now,
            )
            .await?;
            return Ok(());
        }
    };
    let html = track_html(
        &parts.html,
        |url| links.click(person.id, id, url),
        &links.open(person.id, id),
        &unsubscribe,
    );
    let mail = email::build(&email::Outgoing {
        from: EmailAddress::parse("fromEmail", &m.from_email)?,
        from_name: m.from_name.clone(),
        to: to.clone(),
        subject: parts.subject,
        html,
        text: parts.text,
        key: format!("transactional/{ws}/{id}"),
        // One-click unsubscribe headers belong to marketing mail only.
        unsubscribe_url: (purpose == ConsentPurpose::Marketing).then_some(unsubscribe),
    })?;
    match ctx.outbound.mailer.deliver(mail).await {
        Delivery::Sent => {
            let tx = crate::platform::db::write(db).await?;
            settle(
                &tx,
                id,
                MessageState::Sending,
                MessageState::Sent,
                None,
                now,
            )
            .await?;
            if let Some(m) = message::Entity::find_by_id(id).one(&tx).await? {
                crate::engagement::tracking::tell(
                    &tx,
                    m.workspace_id,
                    m.contact_id,
                    WebhookEventType::MessageSent,
                    "TransactionalEmail",
                    &m,
                    None,
                )
                .await?;
            }
            tx.commit().await?;
            tracing::info!(message = id, "transactional email sent");
            Ok(())
        }
        Delivery::Deferred(why) => {
            // Not taken, so putting it back cannot send twice; the queue retries the job.
            settle(
                db,
                id,
                MessageState::Sending,
                MessageState::Queued,
                Some(why.clone()),
                now,
            )
            .await?;
            Err(EngineError::internal(format!(
                "the mail server deferred the message: {why}"
            )))
        }
        Delivery::Rejected(why, Some(code)) if MAILBOX_GONE.contains(&code) => {
            settle(
                db,
                id,
                MessageState::Sending,
                MessageState::Bounced,
                Some(why),
                now,
            )
            .await?;
            suppression::add(
                db,
                ws,
                &suppression::email_hash(&to),
                SuppressionReason::HardBounce,
                Some(format!("SMTP {code} when sending transactional email {id}")),
            )
            .await?;
            Ok(())
        }
        Delivery::Rejected(why, _) => {
            settle(
                db,
                id,
                MessageState::Sending,
                MessageState::Failed,
                Some(why),
                now,
            )
            .await?;
            Ok(())
        }
        Delivery::Unknown(why) => {
            settle(
                db,
                id,
                MessageState::Sending,
                MessageState::Unknown,
                Some(format!(
                    "{why}; the outcome is unknown, so it is not sent again"
                )),
                now,
            )
            .await?;
            Ok(())
        }
    }
}

/// Records an open or a click of a transactional message from a verified tracking link;
/// returns where a click goes on to.
pub async fn track(db: &DatabaseConnection, claim: &Claim, id: i64) -> Result<Option<String>> {
    let m = message::Entity::find_by_id(id)
        .filter(message::Column::WorkspaceId.eq(claim.ws))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("TransactionalEmail", id))?;
    let now = clock::now();
    let (event_type, url) = match claim.action {
        Action::Open => ("email_opened", None),
        Action::Click => (
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
    // A click proves an open even when images were blocked.
    let mut update = message::Entity::update_many()
        .filter(message::Column::Id.eq(id))
        .col_expr(
            message::Column::OpenedAt,
            Expr::col(message::Column::OpenedAt).if_null(now),
        );
    update = if url.is_some() {
        update
            .col_expr(
                message::Column::Clicks,
                Expr::col(message::Column::Clicks).add(1),
            )
            .col_expr(
                message::Column::ClickedAt,
                Expr::col(message::Column::ClickedAt).if_null(now),
            )
    } else {
        update.col_expr(
            message::Column::Opens,
            Expr::col(message::Column::Opens).add(1),
        )
    };
    let tx = crate::platform::db::write(db).await?;
    update.exec(&tx).await?;
    event::ActiveModel {
        workspace_id: Set(m.workspace_id),
        contact_id: Set(m.contact_id),
        event_type: Set(event_type.into()),
        properties: Set(json!({
            "transactional_message_id": m.id,
            "template_id": m.template_id,
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
    crate::engagement::tracking::tell(
        &tx,
        m.workspace_id,
        m.contact_id,
        event,
        "TransactionalEmail",
        &m,
        url.as_deref(),
    )
    .await?;
    tx.commit().await?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(IdempotencyKey::parse("k", "order-123/receipt").is_ok());
        assert!(IdempotencyKey::parse("k", "6f1c0e1e-8c1b-4d5a-9d1e-1f2a3b4c5d6e").is_ok());
        for bad in ["", "has space", "tab\there", "ünïcode", &"x".repeat(201)] {
            assert!(IdempotencyKey::parse("k", bad).is_err(), "{bad}");
        }
    }
}
