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
use crate::engagement::tracking::{Links, MAILBOX_GONE, MessageKind, track_html};
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

mod actions;
mod conditions;
mod email_step;
mod ticker;

pub use ticker::{Ticking, claim_due, run_ticker, tick};

use actions::{create_task, enroll_elsewhere, update_contact};
use conditions::eval;
use email_step::{Mail, mark_sent, send_email};

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
    /// What templates and task titles say besides the contact and its company.
    personal: HashMap<i64, templates::Personal>,
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
    let templates: HashMap<String, email_template::Model> = email_template::Entity::find()
        .filter(email_template::Column::WorkspaceId.eq(ws))
        .filter(email_template::Column::DeletedAt.is_null())
        .filter(email_template::Column::Name.is_in(names))
        .all(db)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let standing = standing(db, ws, &contacts).await?;
    let needs = templates::Needs::of(
        templates
            .values()
            .flat_map(|t| [t.subject.as_str(), t.html.as_str(), t.text.as_str()])
            .chain(definitions.values().flat_map(|d| d.task_titles())),
    );
    let personal =
        templates::personal::load(db, ws, &contacts.values().collect::<Vec<_>>(), needs).await?;
    Ok(Batch {
        ctx,
        ws,
        now: ctx.clock.now(),
        definitions,
        sequence_status,
        contacts,
        firms,
        personal,
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
            Action::Plugin {
                plugin,
                gte,
                then,
                otherwise,
            } => {
                let score = match &b.ctx.plugins {
                    Some(plugins) => plugins.score_now(b.ws, plugin, contact.id).await?,
                    None => None,
                };
                if score.is_some_and(|s| s >= *gte) {
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
        cur.row.exit_reason = Some(reason.into());
        cur.row.finished_at = Some(b.now);
        let event = if status == EnrollmentStatus::Completed {
            crate::values::WebhookEventType::EnrollmentCompleted
        } else {
            crate::values::WebhookEventType::EnrollmentExited
        };
        super::enrollments::tell(tx, b.ws, std::slice::from_ref(&cur.row), event).await?;
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
