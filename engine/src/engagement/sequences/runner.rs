//! Moving enrollments along: the ticker claims enrollments whose next step is due and
//! queues jobs for them; a job runs each enrollment's steps until one waits or it ends.
//!
//! Invariants:
//! - An enrollment is worked by one job at a time: the ticker *claims* it (sets
//!   `claimed_at`) in one conditional update, and only a claim older than the lease — a
//!   worker that died — can be taken again.
//! - Each step's effect commits in the transaction that moves the enrollment past it, and
//!   that move is conditional on the `position` the step ran at: a re-run after a crash
//!   finds the step done, or does it, never both.
//! - Email follows the campaigns' rule: a message row unique per (enrollment, position) is
//!   claimed (`queued → sending`) before the mail server is asked; a row found `sending`
//!   longer than the claim timeout (its worker died) is marked `unknown` (it may have
//!   been delivered) and not sent again.
//! - Exits are checked before every step: consent withdrawn (or the address
//!   suppressed), a reply since enrolling, the goal reached, the contact deleted.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use rapport_schema::{
    activity, campaign_message, company, consent_event, contact, email_template, event, plugin,
    plugin_score, score, sequence_enrollment, sequence_message, sequence_step_event,
    sequence_version, suppression as suppression_row, task,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use serde_json::Value;
use tracing::Instrument;

use super::definition::{self, Action, Condition, Definition};
use super::{step_event, triggers};
use crate::engagement::consent::{self, Decision};
use crate::engagement::outbound::Context;
use crate::engagement::suppression;
use crate::engagement::templates::{self, TemplateParts};
use crate::engagement::tracking::{Links, MAILBOX_GONE, track_html};
use crate::error::{EngineError, Result};
use crate::platform::email::{self, Delivery};
use crate::platform::links::{self, Signer};
use crate::platform::queue::Job;
use crate::platform::records::{self, Deleted};
use crate::values::{
    ActivityKind, ConsentPurpose, ConsentStatus, Direction, EmailAddress, EnrollmentStatus,
    LifecycleStage, MessageState, SequenceStatus, SuppressionReason, Tag, TaskStatus,
};

/// Enrollments per job.
pub const JOB_SIZE: usize = 500;
/// Enrollments of one job worked at the same time.
const PARALLEL: usize = 8;
/// How long a step waits when the mail server defers a message.
const DEFER: Duration = Duration::minutes(10);
/// How long a step that failed (a database error) waits before it runs again.
const RETRY: Duration = Duration::minutes(1);

#[derive(FromQueryResult)]
struct Claimed {
    workspace_id: i64,
    id: i64,
}

/// Claims up to `limit` due enrollments of active sequences; returns (workspace, id).
pub async fn claim_due(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    lease: std::time::Duration,
    limit: usize,
) -> Result<Vec<(i64, i64)>> {
    let lease = Duration::from_std(lease).unwrap_or(Duration::minutes(10));
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE sequence_enrollments SET claimed_at = $1 WHERE id IN (\
             SELECT id FROM sequence_enrollments WHERE status = 'active' AND next_run_at <= $1 \
             AND (claimed_at IS NULL OR claimed_at < $2) \
             AND sequence_id IN (SELECT id FROM sequences WHERE status = 'active') \
             ORDER BY next_run_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING workspace_id, id"
        }
        _ => {
            "UPDATE sequence_enrollments SET claimed_at = ?1 WHERE id IN (\
             SELECT id FROM sequence_enrollments WHERE status = 'active' AND next_run_at <= ?1 \
             AND (claimed_at IS NULL OR claimed_at < ?2) \
             AND sequence_id IN (SELECT id FROM sequences WHERE status = 'active') \
             ORDER BY next_run_at LIMIT ?3) RETURNING workspace_id, id"
        }
    };
    let rows = Claimed::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [now.into(), (now - lease).into(), (limit as i64).into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.workspace_id, r.id)).collect())
}

/// One pass of the ticker: triggers enroll (segments and dates too when `slow`), then
/// every due enrollment is claimed and queued in jobs of [`JOB_SIZE`]. Returns how many
/// enrollments it queued.
pub async fn tick(ctx: &Context, lease: std::time::Duration, slow: bool) -> Result<usize> {
    let now = ctx.clock.now();
    triggers::scan(ctx, now, slow).await?;
    let mut queued = 0;
    loop {
        let claimed = claim_due(&ctx.db, now, lease, JOB_SIZE * 8).await?;
        if claimed.is_empty() {
            break;
        }
        let mut by_ws: HashMap<i64, Vec<i64>> = HashMap::new();
        for (ws, id) in &claimed {
            by_ws.entry(*ws).or_default().push(*id);
        }
        for (ws, ids) in by_ws {
            for chunk in ids.chunks(JOB_SIZE) {
                ctx.queue
                    .push(
                        Job::AdvanceEnrollments {
                            workspace_id: ws,
                            enrollment_ids: chunk.to_vec(),
                            claimed_at: Some(now),
                        },
                        None,
                    )
                    .await?;
            }
        }
        queued += claimed.len();
        if claimed.len() < JOB_SIZE * 8 {
            break;
        }
    }
    Ok(queued)
}

/// How often the ticker runs.
#[derive(Clone, Copy, Debug)]
pub struct Ticking {
    /// Due steps and the table-fed triggers.
    pub every: std::time::Duration,
    /// Segment membership and date attributes, which cost a query per sequence.
    pub slow_every: std::time::Duration,
    /// How long a claimed enrollment belongs to its job; after that the ticker presumes
    /// the worker dead and claims it again.
    pub lease: std::time::Duration,
}

impl Ticking {
    /// The defaults, which the command line's flags also start from.
    pub const DEFAULT: Ticking = Ticking {
        every: std::time::Duration::from_secs(2),
        slow_every: std::time::Duration::from_secs(60),
        lease: std::time::Duration::from_secs(600),
    };
}

impl Default for Ticking {
    fn default() -> Self {
        Ticking::DEFAULT
    }
}

/// Runs [`tick`] on the [`Ticking`] rhythm until `shutdown` resolves.
///
/// A failed or panicking tick is logged and reported to `health` as restarting; the
/// next tick runs as usual, and a good tick reports the ticker running again.
pub async fn run_ticker(
    ctx: Arc<Context>,
    ticking: Ticking,
    health: Arc<crate::platform::health::Health>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use futures_util::FutureExt as _;
    const NAME: &str = "sequence ticker";
    health.running(NAME);
    tokio::pin!(shutdown);
    let mut interval = tokio::time::interval(ticking.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_slow: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                health.stopped(NAME);
                return;
            }
            _ = interval.tick() => {
                let slow = last_slow.is_none_or(|t| t.elapsed() >= ticking.slow_every);
                if slow {
                    last_slow = Some(std::time::Instant::now());
                }
                let outcome = std::panic::AssertUnwindSafe(
                    tick(&ctx, ticking.lease, slow)
                        .instrument(tracing::info_span!("sequence_tick", slow)),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(crate::EngineError::internal("a sequence tick panicked")));
                match outcome {
                    Ok(n) => {
                        health.running(NAME);
                        if n > 0 {
                            tracing::info!(queued = n, "sequence steps queued");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "sequence tick failed");
                        health.failed(NAME, crate::platform::health::describe(&e), ticking.every);
                    }
                }
            }
        }
    }
}

/// Exits every active enrollment of a sequence.
pub(crate) async fn exit_all(
    db: &impl ConnectionTrait,
    sequence_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    Ok(super::ending(EnrollmentStatus::Exited, reason, now)
        .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// What one job did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Steps run.
    pub steps: u64,
    /// Emails the mail server accepted.
    pub emails: u64,
    /// Enrollments that completed or exited.
    pub finished: u64,
}

impl std::ops::AddAssign for Advanced {
    fn add_assign(&mut self, o: Advanced) {
        self.steps += o.steps;
        self.emails += o.emails;
        self.finished += o.finished;
    }
}

/// What stands between a contact and the next step, read once per job.
#[derive(Clone, Debug, Default)]
struct Standing {
    /// Why the contact may no longer get marketing (withdrawn, suppressed).
    blocked: Option<String>,
    /// The latest reply (an inbound email that is not a tracking record).
    last_reply: Option<DateTime<Utc>>,
}

/// What the enrollments of one job share.
struct Batch<'a> {
    ctx: &'a Context,
    ws: i64,
    now: DateTime<Utc>,
    definitions: HashMap<i64, Arc<Definition>>,
    sequence_status: HashMap<i64, SequenceStatus>,
    contacts: HashMap<i64, contact::Model>,
    firms: HashMap<i64, company::Model>,
    templates: HashMap<String, email_template::Model>,
    standing: HashMap<i64, Standing>,
    signer: Signer,
}

/// Job: runs the due steps of enrollments claimed at `claimed_at` (any claim when
/// `None`); those claimed again since belong to a newer job.
pub async fn advance(
    ctx: &Context,
    ws: i64,
    ids: &[i64],
    claimed_at: Option<DateTime<Utc>>,
) -> Result<Advanced> {
    let db = &ctx.db;
    let claim = match claimed_at {
        Some(at) => sequence_enrollment::Column::ClaimedAt.eq(at),
        None => sequence_enrollment::Column::ClaimedAt.is_not_null(),
    };
    // The lease starts again now, so a slow queue does not let the ticker hand these
    // enrollments to a second job while this one works them.
    let fresh = ctx.clock.now();
    sequence_enrollment::Entity::update_many()
        .col_expr(sequence_enrollment::Column::ClaimedAt, Expr::value(fresh))
        .filter(sequence_enrollment::Column::WorkspaceId.eq(ws))
        .filter(sequence_enrollment::Column::Id.is_in(ids.iter().copied()))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
        .filter(claim)
        .exec(db)
        .await?;
    let rows = sequence_enrollment::Entity::find()
        .filter(sequence_enrollment::Column::WorkspaceId.eq(ws))
        .filter(sequence_enrollment::Column::Id.is_in(ids.iter().copied()))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
        .filter(sequence_enrollment::Column::ClaimedAt.eq(fresh))
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(Advanced::default());
    }
    let batch = load_batch(ctx, ws, &rows).await?;
    let batch = &batch;
    let mut total = Advanced::default();
    let mut runs = futures_util::stream::iter(
        rows.into_iter()
            .map(|e| async move { (e.id, run_one(batch, e).await) }),
    )
    .buffer_unordered(PARALLEL);
    let mut failed = Vec::new();
    while let Some((id, outcome)) = runs.next().await {
        match outcome {
            Ok(a) => total += a,
            Err(e) => {
                tracing::warn!(enrollment = id, error = %e, "sequence step failed");
                failed.push(id);
            }
        }
    }
    if !failed.is_empty() {
        // What a failed step wrote rolled back; the step runs again a little later.
        sequence_enrollment::Entity::update_many()
            .col_expr(
                sequence_enrollment::Column::ClaimedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                sequence_enrollment::Column::NextRunAt,
                Expr::value(fresh + RETRY),
            )
            .filter(sequence_enrollment::Column::Id.is_in(failed.clone()))
            .filter(sequence_enrollment::Column::ClaimedAt.eq(fresh))
            .exec(db)
            .await?;
    }
    Ok(total)
}

async fn load_batch<'a>(
    ctx: &'a Context,
    ws: i64,
    rows: &[sequence_enrollment::Model],
) -> Result<Batch<'a>> {
    let db = &ctx.db;
    let mut version_ids: Vec<i64> = rows.iter().map(|e| e.version_id).collect();
    version_ids.sort_unstable();
    version_ids.dedup();
    let mut definitions = HashMap::new();
    for v in sequence_version::Entity::find()
        .filter(sequence_version::Column::Id.is_in(version_ids))
        .all(db)
        .await?
    {
        definitions.insert(v.id, Arc::new(super::stored_definition(&v)?));
    }
    let mut sequence_ids: Vec<i64> = rows.iter().map(|e| e.sequence_id).collect();
    sequence_ids.sort_unstable();
    sequence_ids.dedup();
    let sequence_status = rapport_schema::sequence::Entity::find()
        .filter(rapport_schema::sequence::Column::Id.is_in(sequence_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, super::status(&s)))
        .collect();
    let contact_ids: Vec<i64> = rows.iter().map(|e| e.contact_id).collect();
    let contacts: HashMap<i64, contact::Model> =
        records::scoped::<contact::Entity>(ws, Deleted::Include)
            .filter(contact::Column::Id.is_in(contact_ids.clone()))
            .all(db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
    let firms = records::scoped::<company::Entity>(ws, Deleted::Include)
        .filter(company::Column::Id.is_in(contacts.values().filter_map(|c| c.company_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect();
    let names: Vec<String> = definitions
        .values()
        .flat_map(|d| d.templates().into_iter().map(|(_, t)| t.to_string()))
        .collect();
    let templates = email_template::Entity::find()
        .filter(email_template::Column::WorkspaceId.eq(ws))
        .filter(email_template::Column::DeletedAt.is_null())
        .filter(email_template::Column::Name.is_in(names))
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let standing = standing(db, ws, &contacts).await?;
    Ok(Batch {
        ctx,
        ws,
        now: ctx.clock.now(),
        definitions,
        sequence_status,
        contacts,
        firms,
        templates,
        standing,
        signer: links::signer(db, ws).await?,
    })
}

/// Consent, suppression and replies of many contacts, in three statements.
async fn standing(
    db: &impl ConnectionTrait,
    ws: i64,
    contacts: &HashMap<i64, contact::Model>,
) -> Result<HashMap<i64, Standing>> {
    let ids: Vec<i64> = contacts.keys().copied().collect();
    let mut out: HashMap<i64, Standing> = ids.iter().map(|&i| (i, Standing::default())).collect();
    let consents: Vec<(i64, String)> = consent_event::Entity::find()
        .select_only()
        .column(consent_event::Column::ContactId)
        .column(consent_event::Column::Status)
        .filter(consent_event::Column::WorkspaceId.eq(ws))
        .filter(consent_event::Column::ContactId.is_in(ids.clone()))
        .filter(consent_event::Column::Channel.eq("email"))
        .filter(consent_event::Column::Purpose.eq(ConsentPurpose::Marketing.as_str()))
        .order_by_asc(consent_event::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let mut latest: HashMap<i64, String> = HashMap::new();
    for (c, s) in consents {
        latest.insert(c, s);
    }
    for (c, s) in latest {
        let status = ConsentStatus::from_db(&s);
        if matches!(status, ConsentStatus::Withdrawn | ConsentStatus::Denied)
            && let Some(st) = out.get_mut(&c)
        {
            st.blocked = Some("unsubscribed".into());
        }
    }
    let hashes: HashMap<String, i64> = contacts
        .values()
        .filter_map(|c| {
            let address = EmailAddress::parse("email", c.email.as_deref()?).ok()?;
            Some((suppression::email_hash(&address), c.id))
        })
        .collect();
    let suppressed: Vec<(String, String)> = suppression_row::Entity::find()
        .select_only()
        .column(suppression_row::Column::EmailHash)
        .column(suppression_row::Column::Reason)
        .filter(suppression_row::Column::WorkspaceId.eq(ws))
        .filter(suppression_row::Column::EmailHash.is_in(hashes.keys().cloned()))
        .into_tuple()
        .all(db)
        .await?;
    for (hash, reason) in suppressed {
        if let Some(st) = hashes.get(&hash).and_then(|c| out.get_mut(c)) {
            st.blocked = Some(format!("suppressed ({reason})"));
        }
    }
    let replies: Vec<(Option<i64>, DateTime<Utc>)> =
        activity::Entity::find()
            .select_only()
            .column(activity::Column::ContactId)
            .column_as(activity::Column::OccurredAt.max(), "at")
            .filter(activity::Column::WorkspaceId.eq(ws))
            .filter(activity::Column::ContactId.is_in(ids))
            .filter(activity::Column::Kind.eq(ActivityKind::Email.as_str()))
            .filter(activity::Column::Direction.eq(Direction::Inbound.as_str()))
            .filter(activity::Column::DeletedAt.is_null())
            // Opens and clicks of campaign email are recorded as inbound email too.
            .filter(
                sea_orm::Condition::any()
                    .add(activity::Column::Subject.is_null())
                    .add(
                        sea_orm::Condition::all()
                            .add(activity::Column::Subject.not_like(format!(
                                "{}%",
                                crate::engagement::tracking::OPENED_SUBJECT
                            )))
                            .add(activity::Column::Subject.not_like(format!(
                                "{}%",
                                crate::engagement::tracking::CLICKED_SUBJECT
                            ))),
                    ),
            )
            .group_by(activity::Column::ContactId)
            .into_tuple()
            .all(db)
            .await?;
    for (c, at) in replies {
        if let Some(st) = c.and_then(|c| out.get_mut(&c)) {
            st.last_reply = Some(at);
        }
    }
    Ok(out)
}

/// Where an enrollment stands while a job works it.
#[derive(Clone, Debug)]
struct Cursor {
    row: sequence_enrollment::Model,
}

/// What a step asks for next.
enum Next {
    /// Go to this step (or finish when `None`).
    Go(Option<String>),
    /// Stay, and run this step again at this time.
    Later(DateTime<Utc>, Option<String>),
    /// Leave the sequence.
    Exit(String),
    /// Done: the sequence's end.
    Complete(String),
}

async fn run_one(b: &Batch<'_>, row: sequence_enrollment::Model) -> Result<Advanced> {
    let span = tracing::info_span!("enrollment", id = row.id, contact = row.contact_id);
    run_steps(b, row).instrument(span).await
}

async fn run_steps(b: &Batch<'_>, row: sequence_enrollment::Model) -> Result<Advanced> {
    let mut done = Advanced::default();
    let mut cur = Cursor { row };
    if b.sequence_status.get(&cur.row.sequence_id) != Some(&SequenceStatus::Active) {
        // Paused after the claim: release it untouched.
        release(b, &cur, cur.row.next_run_at.unwrap_or(b.now)).await?;
        return Ok(done);
    }
    let Some(def) = b.definitions.get(&cur.row.version_id).cloned() else {
        finish(b, &mut cur, EnrollmentStatus::Exited, "its version is gone").await?;
        done.finished += 1;
        return Ok(done);
    };
    let mut contact = match b.contacts.get(&cur.row.contact_id) {
        Some(c) if c.deleted_at.is_none() => c.clone(),
        _ => {
            finish(b, &mut cur, EnrollmentStatus::Exited, "contact deleted").await?;
            done.finished += 1;
            return Ok(done);
        }
    };
    let standing = b.standing.get(&contact.id).cloned().unwrap_or_default();
    for _ in 0..definition::MAX_STEPS_PER_RUN {
        if let Some(reason) = exit_reason(b, &def, &cur, &contact, &standing).await? {
            finish(b, &mut cur, EnrollmentStatus::Exited, &reason).await?;
            done.finished += 1;
            return Ok(done);
        }
        let Some(step) = def.step(&cur.row.step_key) else {
            finish(b, &mut cur, EnrollmentStatus::Exited, "its step is gone").await?;
            done.finished += 1;
            return Ok(done);
        };
        done.steps += 1;
        let tz = definition::zone(contact.timezone.as_deref());
        // The step's own work first; what it writes with the move comes after, in one
        // transaction (taken only then: on SQLite it holds the write lock).
        let mut sent = None;
        let next = match &step.action {
            Action::Wait {
                duration,
                until,
                next,
            } => {
                let wake = definition::wake_time(
                    duration.as_deref(),
                    until.as_ref(),
                    cur.row.step_entered_at,
                    tz,
                );
                if wake > b.now {
                    Next::Later(wake, None)
                } else {
                    Next::Go(next.clone())
                }
            }
            Action::SendEmail { template, next } => {
                match send_email(b, &def, &cur, &contact, template).await? {
                    Mail::Sent(id) => {
                        sent = Some(id);
                        Next::Go(next.clone())
                    }
                    Mail::NotSent => Next::Go(next.clone()),
                    Mail::Later(at, why) => Next::Later(at, Some(why)),
                    Mail::Exit(why) => Next::Exit(why),
                }
            }
            Action::Branch {
                condition,
                then,
                otherwise,
            } => {
                if eval(b, &cur, &contact, condition).await? {
                    Next::Go(Some(then.clone()))
                } else {
                    Next::Go(otherwise.clone())
                }
            }
            Action::UpdateContact { next, .. } => Next::Go(next.clone()),
            Action::CreateTask { next, .. } => Next::Go(next.clone()),
            Action::Enroll { next, .. } => Next::Go(next.clone()),
            Action::Exit { reason } => {
                Next::Complete(reason.clone().unwrap_or_else(|| "exit step".into()))
            }
        };
        let to = match next {
            Next::Later(at, why) => {
                defer(b, &cur, at, why).await?;
                return Ok(done);
            }
            Next::Exit(why) => {
                finish(b, &mut cur, EnrollmentStatus::Exited, &why).await?;
                done.finished += 1;
                return Ok(done);
            }
            Next::Complete(why) => {
                finish(b, &mut cur, EnrollmentStatus::Completed, &why).await?;
                done.finished += 1;
                return Ok(done);
            }
            Next::Go(to) => to,
        };
        let tx = crate::platform::db::write(&b.ctx.db).await?;
        if let Some(id) = sent {
            mark_sent(&tx, id, b.now).await?;
        }
        match &step.action {
            Action::UpdateContact { .. } => {
                contact = update_contact(&tx, b, contact, &step.action).await?;
            }
            Action::CreateTask {
                title, due_in_days, ..
            } => create_task(&tx, b, &contact, title, *due_in_days).await?,
            Action::Enroll { sequence, .. } => enroll_elsewhere(&tx, b, &cur, sequence).await?,
            _ => {}
        }
        match to {
            None => {
                let ok = finish_in(
                    &tx,
                    b,
                    &mut cur,
                    EnrollmentStatus::Completed,
                    "end of sequence",
                )
                .await?;
                if ok {
                    tx.commit().await?;
                    done.finished += 1;
                    done.emails += sent.is_some() as u64;
                }
                return Ok(done);
            }
            Some(to) => {
                let Some(wake) = move_to(&tx, b, &def, &mut cur, &to, tz).await? else {
                    // Another run moved it first: its effects stand, ours roll back.
                    return Ok(done);
                };
                tx.commit().await?;
                done.emails += sent.is_some() as u64;
                if wake > b.now {
                    return Ok(done);
                }
            }
        }
    }
    // A long straight run: the rest happens at the next tick.
    release(b, &cur, b.now).await?;
    Ok(done)
}

/// Why the enrollment must leave before its next step, if it must.
async fn exit_reason(
    b: &Batch<'_>,
    def: &Definition,
    cur: &Cursor,
    contact: &contact::Model,
    standing: &Standing,
) -> Result<Option<String>> {
    if let Some(why) = &standing.blocked {
        return Ok(Some(why.clone()));
    }
    if def.exit_on_reply
        && standing
            .last_reply
            .is_some_and(|at| at >= cur.row.enrolled_at)
    {
        return Ok(Some("replied".into()));
    }
    if let Some(goal) = &def.goal
        && eval(b, cur, contact, goal).await?
    {
        return Ok(Some("goal reached".into()));
    }
    Ok(None)
}

/// Moves past the current step to `to`; returns when `to` wants to run (a wait's end,
/// or now), or `None` when another run moved the enrollment first.
async fn move_to(
    tx: &impl ConnectionTrait,
    b: &Batch<'_>,
    def: &Definition,
    cur: &mut Cursor,
    to: &str,
    tz: chrono_tz::Tz,
) -> Result<Option<DateTime<Utc>>> {
    let wake = match def.step(to).map(|s| &s.action) {
        Some(Action::Wait {
            duration, until, ..
        }) => definition::wake_time(duration.as_deref(), until.as_ref(), b.now, tz),
        _ => b.now,
    };
    let parked = wake > b.now;
    let moved = sequence_enrollment::Entity::update_many()
        .col_expr(sequence_enrollment::Column::StepKey, Expr::value(to))
        .col_expr(
            sequence_enrollment::Column::Position,
            Expr::value(cur.row.position + 1),
        )
        .col_expr(
            sequence_enrollment::Column::StepEnteredAt,
            Expr::value(b.now),
        )
        .col_expr(sequence_enrollment::Column::NextRunAt, Expr::value(wake))
        .col_expr(
            sequence_enrollment::Column::ClaimedAt,
            if parked {
                Expr::value(Option::<DateTime<Utc>>::None)
            } else {
                Expr::col(sequence_enrollment::Column::ClaimedAt)
            },
        )
        .col_expr(sequence_enrollment::Column::UpdatedAt, Expr::value(b.now))
        .filter(sequence_enrollment::Column::Id.eq(cur.row.id))
        .filter(sequence_enrollment::Column::Position.eq(cur.row.position))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
        .exec(tx)
        .await?
        .rows_affected
        > 0;
    if !moved {
        return Ok(None);
    }
    sequence_step_event::Entity::insert_many([
        step_event(&cur.row, &cur.row.step_key, "completed", None, b.now),
        step_event(&cur.row, to, "entered", None, b.now),
    ])
    .exec_without_returning(tx)
    .await?;
    cur.row.step_key = to.into();
    cur.row.position += 1;
    cur.row.step_entered_at = b.now;
    cur.row.next_run_at = Some(wake);
    Ok(Some(wake))
}

/// Ends the enrollment in `tx`; false when another run moved it first.
async fn finish_in(
    tx: &impl ConnectionTrait,
    b: &Batch<'_>,
    cur: &mut Cursor,
    status: EnrollmentStatus,
    reason: &str,
) -> Result<bool> {
    let ended = super::ending(status, reason, b.now)
        .filter(sequence_enrollment::Column::Id.eq(cur.row.id))
        .filter(sequence_enrollment::Column::Position.eq(cur.row.position))
        .exec(tx)
        .await?
        .rows_affected
        > 0;
    if ended {
        let outcome = match status {
            EnrollmentStatus::Completed => "completed",
            _ => "exited",
        };
        step_event(
            &cur.row,
            &cur.row.step_key,
            outcome,
            Some(reason.into()),
            b.now,
        )
        .insert(tx)
        .await?;
        cur.row.status = status.as_str().into();
    }
    Ok(ended)
}

async fn finish(
    b: &Batch<'_>,
    cur: &mut Cursor,
    status: EnrollmentStatus,
    reason: &str,
) -> Result<()> {
    let tx = crate::platform::db::write(&b.ctx.db).await?;
    if finish_in(&tx, b, cur, status, reason).await? {
        tx.commit().await?;
    }
    Ok(())
}

/// Lets go of the claim; the step runs again at `at`.
async fn release(b: &Batch<'_>, cur: &Cursor, at: DateTime<Utc>) -> Result<()> {
    defer(b, cur, at, None).await
}

/// Lets go of the claim until `at`, recording why the step waits (quiet hours, the
/// frequency cap, ...) in the same transaction, so the history never shows a deferral
/// the enrollment does not have.
async fn defer(b: &Batch<'_>, cur: &Cursor, at: DateTime<Utc>, why: Option<String>) -> Result<()> {
    let tx = crate::platform::db::write(&b.ctx.db).await?;
    let released = sequence_enrollment::Entity::update_many()
        .col_expr(sequence_enrollment::Column::NextRunAt, Expr::value(at))
        .col_expr(
            sequence_enrollment::Column::ClaimedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(sequence_enrollment::Column::Id.eq(cur.row.id))
        .filter(sequence_enrollment::Column::Position.eq(cur.row.position))
        .exec(&tx)
        .await?
        .rows_affected
        > 0;
    if released && why.is_some() {
        step_event(&cur.row, &cur.row.step_key, "deferred", why, b.now)
            .insert(&tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Evaluates a condition for the enrollment's contact.
fn eval<'a>(
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
async fn score_of(
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

/// What became of an email step.
enum Mail {
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
async fn capped_until(
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

async fn message_state(
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

async fn mark_sent(tx: &impl ConnectionTrait, id: i64, now: DateTime<Utc>) -> Result<()> {
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
    Ok(())
}

/// The email step: limits, the exactly-once claim, consent at send time, the send.
async fn send_email(
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
    let Some(saved) = b.templates.get(template) else {
        return skip(format!("the template '{template}' was deleted")).await;
    };
    let links = Links {
        signer: &b.signer,
        base: b.ctx.outbound.public_url.trim_end_matches('/'),
        workspace_id: b.ws,
        sequence: true,
    };
    let unsubscribe = links.unsubscribe(contact.id, m.id);
    let firm = contact.company_id.and_then(|c| b.firms.get(&c));
    let parts = match templates::render(
        &TemplateParts {
            subject: saved.subject.clone(),
            html: saved.html.clone(),
            text: saved.text.clone(),
        },
        &templates::context(contact, firm, &unsubscribe),
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

/// The update-contact step, in the step's transaction.
async fn update_contact(
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
    if !attributes.is_empty() {
        if !attrs.is_object() {
            attrs = Value::Object(Default::default());
        }
        let map = attrs.as_object_mut().expect("an object");
        for (k, v) in attributes {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    let old_stage = contact.lifecycle_stage.clone();
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
async fn create_task(
    tx: &impl ConnectionTrait,
    b: &Batch<'_>,
    contact: &contact::Model,
    title: &str,
    due_in_days: Option<u32>,
) -> Result<()> {
    let vars = templates::context(
        contact,
        contact.company_id.and_then(|c| b.firms.get(&c)),
        "",
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
async fn enroll_elsewhere(
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
    if super::status(&other) != SequenceStatus::Active {
        return Ok(());
    }
    let other = super::get(tx, b.ws, other.id).await?;
    super::enroll_in(
        tx,
        &other,
        &[cur.row.contact_id],
        &format!("sequence:{}", cur.row.sequence_id),
        b.now,
    )
    .await?;
    Ok(())
}
