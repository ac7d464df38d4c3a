//! Sending a campaign's messages: the batch job, each message's claim → consent → render
//! → send → record, the pacing of sends by the database's clock, the failure streak that
//! pauses a campaign, and the settling of claims whose answer was lost.

use super::*;
use crate::platform::outbox;

/// What one message needs to be sent.
pub(super) struct Recipient {
    message: campaign_message::Model,
    person: contact::Model,
    firm: Option<company::Model>,
    personal: Option<templates::Personal>,
}

pub(super) async fn recipients(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    campaign_id: i64,
    message_ids: &[i64],
    needs: templates::Needs,
) -> Result<Vec<Recipient>> {
    let messages = campaign_message::Entity::find()
        .filter(campaign_message::Column::CampaignId.eq(campaign_id))
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::Id.is_in(message_ids.iter().copied()))
        .filter(campaign_message::Column::State.eq(MessageState::Queued.as_str()))
        .order_by_asc(campaign_message::Column::Id)
        .all(db)
        .await?;
    let people: HashMap<i64, contact::Model> =
        records::scoped::<contact::Entity>(workspace_id, Deleted::Include)
            .filter(contact::Column::Id.is_in(messages.iter().map(|m| m.contact_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
    let firms: HashMap<i64, company::Model> =
        records::scoped::<company::Entity>(workspace_id, Deleted::Include)
            .filter(company::Column::Id.is_in(people.values().filter_map(|p| p.company_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
    let mut personal = templates::personal::load(
        db,
        workspace_id,
        &people.values().collect::<Vec<_>>(),
        needs,
    )
    .await?;
    Ok(messages
        .into_iter()
        .filter_map(|message| {
            let person = people.get(&message.contact_id)?.clone();
            let firm = person.company_id.and_then(|id| firms.get(&id).cloned());
            Some(Recipient {
                message,
                firm,
                personal: personal.remove(&person.id),
                person,
            })
        })
        .collect())
}

/// Moves a message from `from` to `to`; false when another worker got there first.
pub(super) async fn transition(
    db: &impl ConnectionTrait,
    message_id: i64,
    from: MessageState,
    to: MessageState,
    reason: Option<&str>,
) -> Result<bool> {
    let now = clock::now();
    let mut update = campaign_message::Entity::update_many()
        .col_expr(campaign_message::Column::State, Expr::value(to.as_str()))
        .filter(campaign_message::Column::Id.eq(message_id))
        .filter(campaign_message::Column::State.eq(from.as_str()));
    update = match to {
        MessageState::Sending => update
            .col_expr(campaign_message::Column::ClaimedAt, Expr::value(now))
            .col_expr(
                campaign_message::Column::Attempts,
                Expr::col(campaign_message::Column::Attempts).add(1),
            ),
        MessageState::Sent => update.col_expr(campaign_message::Column::SentAt, Expr::value(now)),
        MessageState::Bounced => update
            .col_expr(campaign_message::Column::BouncedAt, Expr::value(now))
            .col_expr(
                campaign_message::Column::Reason,
                Expr::value(reason.map(String::from)),
            ),
        MessageState::Failed | MessageState::Skipped | MessageState::Unknown => update
            .col_expr(campaign_message::Column::FailedAt, Expr::value(now))
            .col_expr(
                campaign_message::Column::Reason,
                Expr::value(reason.map(String::from)),
            ),
        MessageState::Queued => update.col_expr(
            campaign_message::Column::Reason,
            Expr::value(reason.map(String::from)),
        ),
        _ => update,
    };
    Ok(update.exec(db).await?.rows_affected > 0)
}

/// What happened to one send attempt, for the campaign's failure streak.
pub(super) enum Attempt {
    /// The server accepted it; the row is marked sent with others of the batch.
    Sent(i64),
    Done,
    Failed,
    /// The server refused for now: put back, and retry the batch later.
    Deferred(String),
}

/// Sends one message: everything that may refuse it or takes time (consent, rendering,
/// building the MIME message) first; then `gate`, which waits for the send's turn and says
/// whether to go on; then the claim and the mail server, back to back, so the rate the
/// server sees is the rate the gate lets through.
pub(super) async fn send_one(
    ctx: &Context,
    c: &campaign::Model,
    variants: &HashMap<i64, campaign_variant::Model>,
    links: &Links<'_>,
    r: &Recipient,
    gate: impl std::future::Future<Output = Result<bool>>,
) -> Result<Attempt> {
    let db = &ctx.db;
    let m = &r.message;
    // Whether it may go at all is decided before the claim: a message that is skipped is
    // never `sending`, so a worker dying here cannot leave it looking interrupted.
    let skip = |why: String| async move {
        transition(
            db,
            m.id,
            MessageState::Queued,
            MessageState::Skipped,
            Some(&why),
        )
        .await?;
        Ok::<_, EngineError>(Attempt::Done)
    };
    let Some(to) = r
        .person
        .email
        .as_deref()
        .and_then(|e| EmailAddress::parse("email", e).ok())
    else {
        return skip("the contact has no email address".into()).await;
    };
    if let Decision::Blocked(why) = consent::may_email_to(
        db,
        c.workspace_id,
        r.person.id,
        &to,
        ConsentPurpose::Marketing,
    )
    .await?
    {
        return skip(why).await;
    }
    if let Some(topic) = c.topic_id
        && !crate::engagement::topics::allows(db, c.workspace_id, r.person.id, topic).await?
    {
        return skip("the contact opted out of the campaign's topic".into()).await;
    }
    let Some(variant) = m.variant_id.and_then(|v| variants.get(&v)) else {
        return skip("the message has no variant".into()).await;
    };
    let unsubscribe = links.unsubscribe(r.person.id, m.id);
    let rendered = templates::render_blocking(
        TemplateParts {
            subject: variant.subject.clone(),
            html: variant.html.clone(),
            text: variant.text.clone(),
        },
        templates::context(
            &r.person,
            r.firm.as_ref(),
            r.personal.as_ref(),
            &templates::PageLinks {
                unsubscribe: &unsubscribe,
                preferences: &links.preferences(r.person.id),
            },
        ),
    )
    .await;
    let parts = match rendered {
        Ok(p) => p,
        Err(e) => {
            transition(
                db,
                m.id,
                MessageState::Queued,
                MessageState::Failed,
                Some(&e.to_string()),
            )
            .await?;
            return Ok(Attempt::Failed);
        }
    };
    let html = track_html(
        &parts.html,
        |url| links.click(r.person.id, m.id, url),
        &links.open(r.person.id, m.id),
        &unsubscribe,
    );
    let from = EmailAddress::parse("fromEmail", &c.from_email)?;
    let message = email::build(&email::Outgoing {
        from,
        from_name: c.from_name.clone(),
        to: to.clone(),
        subject: parts.subject,
        html,
        text: parts.text,
        key: format!("campaign/{}/{}", c.id, r.person.id),
        unsubscribe_url: Some(unsubscribe),
    })?;
    // Not its turn any more (paused, cancelled): it stays queued, never claimed.
    if !gate.await? {
        return Ok(Attempt::Done);
    }
    if !claim(db, m.id, &ctx.outbound.worker).await? {
        return Ok(Attempt::Done);
    }
    match ctx.outbound.mailer.deliver(message).await {
        Delivery::Sent => Ok(Attempt::Sent(m.id)),
        Delivery::Deferred(why) => {
            // The server did not take it, so putting it back cannot cause a duplicate.
            transition(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Queued,
                Some(&why),
            )
            .await?;
            Ok(Attempt::Deferred(why))
        }
        Delivery::Rejected(why, Some(code)) if MAILBOX_GONE.contains(&code) => {
            // The server refused this recipient for good: a hard bounce. The address is
            // suppressed, and the failure says nothing about the relay, so no streak.
            transition(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Bounced,
                Some(&why),
            )
            .await?;
            suppression::add(
                db,
                c.workspace_id,
                &suppression::email_hash(&to),
                SuppressionReason::HardBounce,
                Some(format!("SMTP {code} when sending campaign {}", c.id)),
            )
            .await?;
            Ok(Attempt::Done)
        }
        Delivery::Rejected(why, _) => {
            transition(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Failed,
                Some(&why),
            )
            .await?;
            Ok(Attempt::Failed)
        }
        Delivery::Unknown(why) => {
            let why = format!("{why}; the outcome is unknown, so it is not sent again");
            transition(
                db,
                m.id,
                MessageState::Sending,
                MessageState::Unknown,
                Some(&why),
            )
            .await?;
            Ok(Attempt::Failed)
        }
    }
}

/// Records the campaign's failure streak; pauses it when the streak reaches the limit.
/// Returns true when the campaign was paused.
pub(super) async fn note_outcome(
    ctx: &Context,
    c: &campaign::Model,
    failed: bool,
    streak: &std::sync::atomic::AtomicI32,
) -> Result<bool> {
    use std::sync::atomic::Ordering;
    if !failed {
        if streak.swap(0, Ordering::SeqCst) > 0 {
            campaign::Entity::update_many()
                .col_expr(campaign::Column::ConsecutiveFailures, Expr::value(0))
                .filter(campaign::Column::Id.eq(c.id))
                .exec(&ctx.db)
                .await?;
        }
        return Ok(false);
    }
    streak.fetch_add(1, Ordering::SeqCst);
    campaign::Entity::update_many()
        .col_expr(
            campaign::Column::ConsecutiveFailures,
            Expr::col(campaign::Column::ConsecutiveFailures).add(1),
        )
        .filter(campaign::Column::Id.eq(c.id))
        .exec(&ctx.db)
        .await?;
    let total: Option<i32> = campaign::Entity::find_by_id(c.id)
        .select_only()
        .column(campaign::Column::ConsecutiveFailures)
        .into_tuple()
        .one(&ctx.db)
        .await?;
    if total.unwrap_or(0) >= ctx.outbound.failure_limit {
        let reason = format!(
            "{AUTO_PAUSE} {} consecutive failed sends; it resumes by itself when the mail server answers again",
            ctx.outbound.failure_limit
        );
        tracing::warn!(campaign = c.id, "{reason}");
        if set_status(
            &ctx.db,
            c.id,
            &[CampaignStatus::Sending],
            CampaignStatus::Paused,
            Some(reason),
        )
        .await?
        {
            ctx.queue
                .push(
                    Job::ResumeWhenReachable {
                        workspace_id: c.workspace_id,
                        campaign_id: c.id,
                        attempt: 0,
                    },
                    Some(
                        clock::now()
                            + chrono::Duration::from_std(ctx.outbound.probe_delay)
                                .unwrap_or_default(),
                    ),
                )
                .await?;
        }
        return Ok(true);
    }
    Ok(false)
}

pub(super) async fn current_status(db: &impl ConnectionTrait, id: i64) -> Result<CampaignStatus> {
    let s: Option<String> = campaign::Entity::find_by_id(id)
        .select_only()
        .column(campaign::Column::Status)
        .into_tuple()
        .one(db)
        .await?;
    Ok(s.map(|s| CampaignStatus::from_db(&s))
        .unwrap_or(CampaignStatus::Cancelled))
}

/// Accepted messages recorded as sent in one statement, at most.
pub(super) const MARK_SENT_EVERY: usize = 32;

/// How long an accepted message may wait to be recorded: at a fast rate a group fills in
/// milliseconds; at a slow one this keeps what a crash can leave unrecorded to the
/// messages of the last fraction of a second.
pub(super) const MARK_SENT_WITHIN: Duration = Duration::from_millis(100);

/// Records messages the mail server accepted. They were claimed (durably) before sending,
/// so this write need not wait for the disk: if it is lost in a crash the rows stay
/// `sending` and end as `unknown`, never sent twice. On PostgreSQL it therefore commits
/// asynchronously, which halves the fsyncs per message.
pub(super) async fn mark_sent(
    db: &DatabaseConnection,
    workspace_id: i64,
    campaign_id: i64,
    ids: &mut Vec<i64>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let tx = crate::platform::db::write(db).await?;
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        tx.execute_unprepared("SET LOCAL synchronous_commit TO OFF")
            .await?;
    }
    let batch: Vec<i64> = std::mem::take(ids);
    campaign_message::Entity::update_many()
        .col_expr(
            campaign_message::Column::State,
            Expr::value(MessageState::Sent.as_str()),
        )
        .col_expr(campaign_message::Column::SentAt, Expr::value(clock::now()))
        .filter(campaign_message::Column::Id.is_in(batch.iter().copied()))
        .filter(campaign_message::Column::State.eq(MessageState::Sending.as_str()))
        .exec(&tx)
        .await?;
    // `message.sent` for each, when an endpoint of the workspace listens: one look per
    // group, the rows read only then.
    let endpoints = outbox::listeners(&tx, workspace_id, WebhookEventType::MessageSent).await?;
    if !endpoints.is_empty() {
        let sent = campaign_message::Entity::find()
            .filter(campaign_message::Column::Id.is_in(batch))
            .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
            .all(&tx)
            .await?;
        let now = clock::now();
        for m in sent {
            let subject = outbox::Subject::contact(m.contact_id);
            let data = json!({ "object": outbox::object("CampaignMessage", &m) });
            outbox::emit_to(
                &tx,
                workspace_id,
                WebhookEventType::MessageSent,
                subject,
                data,
                &endpoints,
                now,
            )
            .await?;
        }
    }
    let notice = crate::platform::live::Notice {
        workspace_id,
        topic: crate::platform::live::Topic::Campaign,
        scope_id: campaign_id,
        object_id: campaign_id,
    };
    crate::platform::live::publish(&tx, notice).await?;
    tx.commit().await?;
    Ok(())
}

/// Messages of one batch in flight at once: a mail server answers each in a round trip
/// or two, so sending one at a time would leave the connection idle most of the time.
pub(super) const PARALLEL_SENDS: usize = 16;

/// What the sends of one batch share.
#[derive(Default)]
pub(super) struct BatchProgress {
    /// No new message is to be started.
    stop: std::sync::atomic::AtomicBool,
    /// Consecutive failures seen by this batch.
    streak: std::sync::atomic::AtomicI32,
    /// Accepted by the server, not yet recorded as sent, and since when the oldest of
    /// them has waited.
    accepted: std::sync::Mutex<(Vec<i64>, Option<std::time::Instant>)>,
    /// Why the server deferred a message, if it did.
    deferred: std::sync::Mutex<Option<String>>,
}

impl BatchProgress {
    fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Notes a message the server accepted.
    fn accepted(&self, message: i64) {
        let mut accepted = self.accepted.lock().expect("not poisoned");
        accepted.0.push(message);
        accepted.1.get_or_insert_with(std::time::Instant::now);
    }
    /// Takes what is waiting to be recorded as sent, when there is enough of it or the
    /// oldest has waited long enough (or everything, with `all`).
    fn take_accepted(&self, all: bool) -> Vec<i64> {
        let mut accepted = self.accepted.lock().expect("not poisoned");
        let due = accepted.1.is_some_and(|t| t.elapsed() >= MARK_SENT_WITHIN);
        if all || due || accepted.0.len() >= MARK_SENT_EVERY {
            accepted.1 = None;
            std::mem::take(&mut accepted.0)
        } else {
            Vec::new()
        }
    }
}

/// Reserves the campaign's next send slot and returns how long to wait for it. Slots are
/// `1 / rate` apart and kept in the campaign's row, so every batch and every worker —
/// including one that took over from a dead worker — draws from the same sequence, and
/// the campaign keeps its rate however many send at once.
///
/// "Now" is the database's clock, read inside the update: a reservation that waited for a
/// lock gets a slot from when it ran, not from when it was asked, so late sends are spread
/// out again instead of going in a burst to catch up; and workers on machines whose clocks
/// differ still draw from one clock.
pub(super) async fn next_send_slot(
    db: &DatabaseConnection,
    campaign_id: i64,
    rate: i32,
) -> Result<Duration> {
    let step = 1_000_000 / i64::from(std::cmp::Ord::max(rate, 1));
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            // clock_timestamp() in SET and RETURNING is read once the row is locked, not
            // when the statement began (as now() would be).
            "UPDATE campaigns SET next_send_us = GREATEST(COALESCE(next_send_us, 0), \
             CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)) + $1 \
             WHERE id = $2 \
             RETURNING next_send_us, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) AS now_us"
        }
        _ => {
            "UPDATE campaigns SET next_send_us = \
             MAX(COALESCE(next_send_us, 0), CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) + ? \
             WHERE id = ? RETURNING next_send_us, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) AS now_us"
        }
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [step.into(), campaign_id.into()],
        ))
        .await?
        .ok_or_else(|| EngineError::not_found("Campaign", campaign_id))?;
    let next: i64 = row.try_get("", "next_send_us")?;
    let now: i64 = row.try_get("", "now_us")?;
    // The slot reserved is the one before `next`.
    Ok(Duration::from_micros(
        std::cmp::Ord::max(next - step - now, 0) as u64,
    ))
}

/// Sends the `k`-th message of a batch no earlier than the campaign's rate allows, unless
/// the batch was told to stop, and does its own bookkeeping. Everything a send writes
/// happens inside this future: the batch only polls the sends, so no send holding a
/// database connection ever waits for the batch to get round to it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn paced_send(
    ctx: &Context,
    c: &campaign::Model,
    variants: &HashMap<i64, campaign_variant::Model>,
    links: &Links<'_>,
    r: &Recipient,
    k: usize,
    progress: &BatchProgress,
) -> Result<()> {
    if progress.stopped() {
        return Ok(());
    }
    let gate = async {
        // A pause or cancel takes effect within a few messages, not at the end of a
        // batch; a paced campaign has the time to look before every message.
        let look = k % 20 == 19 || c.rate_per_second.is_some();
        if look && current_status(&ctx.db, c.id).await? != CampaignStatus::Sending {
            progress.stop();
        }
        // The slot last, so little stands between it and the server; a long wait for it
        // looks at the status again, so a pause made meanwhile holds.
        if let Some(rate) = c.rate_per_second.filter(|r| *r > 0)
            && !progress.stopped()
        {
            let wait = next_send_slot(&ctx.db, c.id, rate).await?;
            tokio::time::sleep(wait).await;
            if wait >= Duration::from_millis(100)
                && current_status(&ctx.db, c.id).await? != CampaignStatus::Sending
            {
                progress.stop();
            }
        }
        Ok(!progress.stopped())
    };
    let failed = match send_one(ctx, c, variants, links, r, gate).await? {
        Attempt::Sent(message) => {
            progress.accepted(message);
            mark_sent(
                &ctx.db,
                c.workspace_id,
                c.id,
                &mut progress.take_accepted(false),
            )
            .await?;
            false
        }
        Attempt::Done => false,
        Attempt::Failed => true,
        Attempt::Deferred(why) => {
            // The rest of the batch stays queued; the queue retries it with backoff.
            progress.stop();
            *progress.deferred.lock().expect("not poisoned") = Some(why);
            true
        }
    };
    if note_outcome(ctx, c, failed, &progress.streak).await? {
        progress.stop();
    }
    Ok(())
}

/// Job: sends a batch of a campaign's messages, several at a time, keeping to its rate.
/// A pause, cancel or failure streak stops new sends at once; those in flight finish,
/// so no message is left claimed by a send that was abandoned half-way.
pub async fn send_batch(
    ctx: &Context,
    workspace_id: i64,
    id: i64,
    message_ids: &[i64],
) -> Result<()> {
    use futures_util::StreamExt;

    let db = &ctx.db;
    let Campaign {
        campaign: c,
        variants,
    } = get(db, workspace_id, id).await?;
    if status(&c) != CampaignStatus::Sending {
        return Ok(());
    }
    let variants: HashMap<i64, campaign_variant::Model> =
        variants.into_iter().map(|v| (v.id, v)).collect();
    let signer = links::signer(db, workspace_id).await?;
    let links = Links {
        signer: &signer,
        base: ctx.outbound.public_url.trim_end_matches('/'),
        workspace_id,
        messages: MessageKind::Campaign,
    };
    settle_interrupted(db, id, Some(ctx.outbound.dead_after), None).await?;
    let needs = templates::Needs::of(
        variants
            .values()
            .flat_map(|v| [v.subject.as_str(), v.html.as_str(), v.text.as_str()]),
    );
    let batch = recipients(db, workspace_id, id, message_ids, needs).await?;
    let progress = BatchProgress::default();
    let (c, variants, links, progress) = (&c, &variants, &links, &progress);
    let mut waiting = batch.iter().enumerate();
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut error = None;
    loop {
        while in_flight.len() < PARALLEL_SENDS && !progress.stopped() {
            let Some((k, r)) = waiting.next() else { break };
            in_flight.push(paced_send(ctx, c, variants, links, r, k, progress));
        }
        let Some(outcome) = in_flight.next().await else {
            break;
        };
        if let Err(e) = outcome {
            // Let the sends in flight finish before giving up, so none is cut off mid-way.
            progress.stop();
            error.get_or_insert(e);
        }
    }
    mark_sent(db, c.workspace_id, c.id, &mut progress.take_accepted(true)).await?;
    if let Some(e) = error {
        return Err(e);
    }
    if let Some(why) = progress.deferred.lock().expect("not poisoned").take() {
        return Err(EngineError::Conflict(format!(
            "the mail server deferred a message: {why}"
        )));
    }
    if progress.stopped() {
        return Ok(());
    }
    finish(ctx, c).await
}

/// Claims a queued message for this worker before it goes to the mail server.
pub(super) async fn claim(db: &DatabaseConnection, message_id: i64, worker: &str) -> Result<bool> {
    let done = campaign_message::Entity::update_many()
        .col_expr(
            campaign_message::Column::State,
            Expr::value(MessageState::Sending.as_str()),
        )
        .col_expr(
            campaign_message::Column::ClaimedAt,
            Expr::value(clock::now()),
        )
        .col_expr(campaign_message::Column::ClaimedBy, Expr::value(worker))
        .col_expr(
            campaign_message::Column::Attempts,
            Expr::col(campaign_message::Column::Attempts).add(1),
        )
        .filter(campaign_message::Column::Id.eq(message_id))
        .filter(campaign_message::Column::State.eq(MessageState::Queued.as_str()))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

/// Settles a campaign's messages that will never hear back as `unknown` (never sent
/// again): those claimed by a worker whose heartbeats stopped more than `dead_after` ago
/// (or that is gone from the queue's worker table) — known at once, from the heartbeats —
/// and, with `claimed_before`, those claimed before it whoever holds them.
pub(super) async fn settle_interrupted(
    db: &DatabaseConnection,
    campaign_id: i64,
    dead_after: Option<Duration>,
    claimed_before: Option<DateTime<Utc>>,
) -> Result<()> {
    let mut whose = Condition::any();
    if let Some(dead_after) = dead_after {
        let backend = db.get_database_backend();
        let seconds = std::cmp::Ord::max(dead_after.as_secs(), 1);
        // The queue's own table of workers and their last heartbeat (apalis).
        let live = match backend {
            sea_orm::DbBackend::Postgres => format!(
                "SELECT id FROM apalis.workers WHERE last_seen >= now() - interval '{seconds} seconds'"
            ),
            _ => format!(
                "SELECT id FROM Workers WHERE last_seen >= strftime('%s', 'now') - {seconds}"
            ),
        };
        whose = whose.add(
            Condition::all()
                .add(campaign_message::Column::ClaimedBy.is_not_null())
                .add(Expr::cust(format!("claimed_by NOT IN ({live})"))),
        );
    }
    if let Some(cutoff) = claimed_before {
        whose = whose.add(campaign_message::Column::ClaimedAt.lt(cutoff));
    }
    if whose.is_empty() {
        return Ok(());
    }
    campaign_message::Entity::update_many()
        .col_expr(
            campaign_message::Column::State,
            Expr::value(MessageState::Unknown.as_str()),
        )
        .col_expr(
            campaign_message::Column::FailedAt,
            Expr::value(clock::now()),
        )
        .col_expr(
            campaign_message::Column::Reason,
            Expr::value(
                "interrupted while sending, so whether the mail server took it is unknown; \
                 not sent again so that nobody gets it twice",
            ),
        )
        .filter(campaign_message::Column::CampaignId.eq(campaign_id))
        .filter(campaign_message::Column::State.eq(MessageState::Sending.as_str()))
        .filter(whose)
        .exec(db)
        .await?;
    Ok(())
}

/// Marks messages claimed longer ago than the timeout as interrupted, and the campaign
/// sent once nothing is left to send. While claims are still young it looks again later.
pub(super) async fn finish(ctx: &Context, c: &campaign::Model) -> Result<()> {
    let db = &ctx.db;
    let cutoff = clock::now()
        - chrono::Duration::from_std(ctx.outbound.claim_timeout)
            .unwrap_or(chrono::Duration::minutes(15));
    settle_interrupted(db, c.id, Some(ctx.outbound.dead_after), Some(cutoff)).await?;
    let open: Vec<String> = campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::State)
        .distinct()
        .filter(campaign_message::Column::CampaignId.eq(c.id))
        .filter(campaign_message::Column::State.is_in([
            MessageState::Queued.as_str(),
            MessageState::Sending.as_str(),
            MessageState::Held.as_str(),
        ]))
        .into_tuple()
        .all(db)
        .await?;
    if open.is_empty() {
        if set_status(
            db,
            c.id,
            &[CampaignStatus::Sending],
            CampaignStatus::Sent,
            None,
        )
        .await?
        {
            tracing::info!(campaign = c.id, "campaign sent");
        }
    } else if open == [MessageState::Sending.as_str()] {
        ctx.queue
            .push(
                Job::LaunchCampaign {
                    workspace_id: c.workspace_id,
                    campaign_id: c.id,
                },
                Some(
                    clock::now()
                        + chrono::Duration::from_std(ctx.outbound.claim_timeout)
                            .unwrap_or_default(),
                ),
            )
            .await?;
    }
    Ok(())
}
