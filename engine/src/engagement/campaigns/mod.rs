//! Campaigns: one marketing email (in A/B variants) to a segment, sent by the job queue.
//!
//! Lifecycle: draft → scheduled → sending → sent, with pause, resume and cancel. When a
//! campaign starts, its segment is evaluated once and becomes one `campaign_messages` row
//! per contact; the unique (campaign, contact) constraint is what makes delivery
//! exactly-once. A worker *claims* a row (queued → sending) in one conditional update
//! before talking to the mail server, so two workers, or a job re-run after a crash, can
//! never send the same row twice. A row whose worker died between the claim and the
//! server's answer stays `sending`; after [`Outbound::claim_timeout`] it is marked failed
//! ("interrupted") rather than sent again: a missed email is better than a duplicate.
//!
//! Consent is checked per message at send time, so a withdrawal that lands while the
//! campaign is sending stops that person's email. Every message carries a signed
//! one-click unsubscribe link (RFC 8058), an open pixel and signed click redirects.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rapport_schema::{
    activity, campaign, campaign_message, campaign_variant, company, contact, event, segment,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use crate::clock;
use crate::engagement::audiences;
use crate::engagement::consent::{self, Decision};
use crate::engagement::outbound::Context;
use crate::engagement::suppression;
use crate::engagement::templates::{self, TemplateParts};
use crate::engagement::tracking::{
    self, CLICKED_SUBJECT, Links, MAILBOX_GONE, MessageKind, OPENED_SUBJECT, track_html,
};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::email::{self, Delivery};
use crate::platform::links::{self, Action, Claim};
use crate::platform::queue::{Job, Queue};
use crate::platform::records::{self, Deleted};
use crate::values::{
    ActivityKind, CampaignStatus, ConsentPurpose, Direction, EmailAddress, MessageState, Patch,
    Scope, SuppressionReason, Text, WebhookEventType, WinnerMetric,
};

mod feedback;
mod reach;
mod send;
mod stats;

pub use feedback::{note_bounce, note_unsubscribe, track};
pub use reach::{MAX_COUNTED, Reach, reach, send_test, test_recipient};
pub use send::send_batch;
use send::*;
pub use stats::{VariantStats, messages, stats, total};

/// How the reason of a pause Rapport made itself begins; only such pauses end by
/// themselves when the mail server is back.
const AUTO_PAUSE: &str = "paused after";

/// Messages per send job when nothing else is said: big enough to amortise the job,
/// small enough that a pause takes effect quickly.
pub const BATCH_SIZE: usize = 200;

/// One A/B variant as a client writes it: a saved template, or the parts inline.
#[derive(Clone, Debug, Default)]
pub struct VariantInput {
    /// Its name (`A`, `B`, …; defaults to its letter).
    pub name: Option<String>,
    /// Its share of the audience relative to the others (default 1).
    pub weight: Option<i32>,
    /// A saved template whose parts are copied into the variant.
    pub template_id: Option<i64>,
    /// Subject (Jinja), when no template is named.
    pub subject: Option<String>,
    /// HTML body (Jinja).
    pub html: Option<String>,
    /// Text body (Jinja).
    pub text: Option<String>,
}

/// An A/B test: send the variants to a share of the audience first, then the winner to
/// the rest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AbTest {
    /// The share of the audience in the test, in (0, 1).
    pub test_share: f64,
    /// Minutes between the test send and picking the winner.
    pub wait_minutes: i32,
    /// What decides the winner.
    pub metric: WinnerMetric,
}

/// A campaign as a client writes it; on update, `None` keeps the current value.
#[derive(Clone, Debug, Default)]
pub struct CampaignInput {
    /// Its name.
    pub name: Option<String>,
    /// The audience.
    pub segment_id: Option<i64>,
    /// Sender address.
    pub from_email: Option<String>,
    /// Sender name.
    pub from_name: Patch<String>,
    /// Sending rate limit, messages per second.
    pub rate_per_second: Patch<i32>,
    /// The variants (replaces all of them).
    pub variants: Option<Vec<VariantInput>>,
    /// An A/B test, or none.
    pub ab_test: Patch<AbTest>,
    /// The topic it is about (contacts who opted out of it are skipped), or none.
    pub topic_id: Patch<i64>,
}

/// A campaign with its variants.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// The row.
    pub campaign: campaign::Model,
    /// Its variants, in order.
    pub variants: Vec<campaign_variant::Model>,
}

fn status(c: &campaign::Model) -> CampaignStatus {
    CampaignStatus::from_db(&c.status)
}

async fn variant_parts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    v: &VariantInput,
    index: usize,
) -> Result<TemplateParts> {
    let field = |f: &str| format!("variants[{index}].{f}");
    let parts = match v.template_id {
        Some(id) => {
            let t = records::get::<rapport_schema::email_template::Entity>(db, workspace_id, id)
                .await?;
            TemplateParts {
                subject: v.subject.clone().unwrap_or(t.subject),
                html: v.html.clone().unwrap_or(t.html),
                text: v.text.clone().unwrap_or(t.text),
            }
        }
        None => TemplateParts {
            subject: v.subject.clone().ok_or_else(|| {
                EngineError::invalid(field("subject"), "is required without a templateId")
            })?,
            html: v.html.clone().ok_or_else(|| {
                EngineError::invalid(field("html"), "is required without a templateId")
            })?,
            text: v.text.clone().ok_or_else(|| {
                EngineError::invalid(field("text"), "is required without a templateId")
            })?,
        },
    };
    if parts.subject.trim().is_empty() {
        return Err(EngineError::invalid(field("subject"), "must not be empty"));
    }
    templates::check(&parts).map_err(|e| match e {
        EngineError::Validation { field: f, message } => EngineError::invalid(field(&f), message),
        other => other,
    })?;
    Ok(parts)
}

async fn replace_variants(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    campaign_id: i64,
    variants: &[VariantInput],
) -> Result<()> {
    if variants.is_empty() {
        return Err(EngineError::invalid(
            "variants",
            "a campaign needs at least one variant",
        ));
    }
    if variants.len() > 26 {
        return Err(EngineError::invalid("variants", "at most 26 variants"));
    }
    let mut rows = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let parts = variant_parts(db, workspace_id, v, i).await?;
        let weight = v.weight.unwrap_or(1);
        if !(1..=1000).contains(&weight) {
            return Err(EngineError::invalid(
                format!("variants[{i}].weight"),
                "must be between 1 and 1000",
            ));
        }
        let name = match &v.name {
            Some(n) => Text::parse(&format!("variants[{i}].name"), n, 100)?.into_string(),
            None => ((b'A' + i as u8) as char).to_string(),
        };
        rows.push(campaign_variant::ActiveModel {
            workspace_id: Set(workspace_id),
            campaign_id: Set(campaign_id),
            name: Set(name),
            weight: Set(weight),
            subject: Set(parts.subject),
            html: Set(parts.html),
            text: Set(parts.text),
            ..Default::default()
        });
    }
    campaign_variant::Entity::delete_many()
        .filter(campaign_variant::Column::CampaignId.eq(campaign_id))
        .exec(db)
        .await?;
    campaign_variant::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn apply(row: &mut campaign::ActiveModel, input: &CampaignInput) -> Result<()> {
    if let Some(name) = &input.name {
        row.name = Set(Text::parse("name", name, 200)?.into_string());
    }
    if let Some(from) = &input.from_email {
        row.from_email = Set(EmailAddress::parse("fromEmail", from)?.as_str().to_string());
    }
    match &input.from_name {
        Patch::Keep => {}
        Patch::Clear => row.from_name = Set(None),
        Patch::Set(n) => row.from_name = Set(Some(Text::parse("fromName", n, 200)?.into_string())),
    }
    match input.rate_per_second {
        Patch::Keep => {}
        Patch::Clear => row.rate_per_second = Set(None),
        Patch::Set(r) if (1..=100_000).contains(&r) => row.rate_per_second = Set(Some(r)),
        Patch::Set(_) => {
            return Err(EngineError::invalid(
                "ratePerSecond",
                "must be between 1 and 100000",
            ));
        }
    }
    match input.ab_test {
        Patch::Keep => {}
        Patch::Clear => {
            row.test_share = Set(None);
            row.test_wait_minutes = Set(None);
            row.winner_metric = Set(None);
        }
        Patch::Set(t) => {
            if !(t.test_share > 0.0 && t.test_share < 1.0) {
                return Err(EngineError::invalid(
                    "abTest.testShare",
                    "must be between 0 and 1, exclusive",
                ));
            }
            if !(1..=10_080).contains(&t.wait_minutes) {
                return Err(EngineError::invalid(
                    "abTest.waitMinutes",
                    "must be between 1 and 10080 (a week)",
                ));
            }
            row.test_share = Set(Some(t.test_share));
            row.test_wait_minutes = Set(Some(t.wait_minutes));
            row.winner_metric = Set(Some(t.metric.as_str().into()));
        }
    }
    Ok(())
}

/// Creates a draft campaign (write scope).
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    input: CampaignInput,
) -> Result<Campaign> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let segment_id = input
        .segment_id
        .ok_or_else(|| EngineError::invalid("segmentId", "is required"))?;
    records::get::<segment::Entity>(db, ws, segment_id).await?;
    if input.name.is_none() {
        return Err(EngineError::invalid("name", "is required"));
    }
    if input.from_email.is_none() {
        return Err(EngineError::invalid("fromEmail", "is required"));
    }
    let variants = input
        .variants
        .clone()
        .ok_or_else(|| EngineError::invalid("variants", "a campaign needs at least one variant"))?;
    let now = clock::now();
    let mut row = campaign::ActiveModel {
        workspace_id: Set(ws),
        segment_id: Set(segment_id),
        status: Set(CampaignStatus::Draft.as_str().into()),
        consecutive_failures: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    apply(&mut row, &input)?;
    if let Patch::Set(t) = &input.topic_id {
        super::topics::get(db, ws, *t).await?;
    }
    row.topic_id = Set(input.topic_id.clone().into_change().flatten());
    let tx = crate::platform::db::write(db).await?;
    let saved = row.insert(&tx).await?;
    replace_variants(&tx, ws, saved.id, &variants).await?;
    tx.commit().await?;
    get(db, ws, saved.id).await
}

/// Changes a draft (or paused-before-start) campaign (write scope).
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    input: CampaignInput,
) -> Result<Campaign> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let current = records::get::<campaign::Entity>(db, ws, id).await?;
    if status(&current) != CampaignStatus::Draft {
        return Err(EngineError::Conflict(format!(
            "the campaign is {}; only a draft can be changed",
            current.status
        )));
    }
    if let Some(segment_id) = input.segment_id {
        records::get::<segment::Entity>(db, ws, segment_id).await?;
    }
    let mut row: campaign::ActiveModel = current.into();
    if let Some(segment_id) = input.segment_id {
        row.segment_id = Set(segment_id);
    }
    if let Patch::Set(t) = &input.topic_id {
        super::topics::get(db, ws, *t).await?;
    }
    if let Some(t) = input.topic_id.clone().into_change() {
        row.topic_id = Set(t);
    }
    apply(&mut row, &input)?;
    row.updated_at = Set(clock::now());
    let tx = crate::platform::db::write(db).await?;
    row.update(&tx).await?;
    if let Some(variants) = &input.variants {
        replace_variants(&tx, ws, id, variants).await?;
    }
    tx.commit().await?;
    get(db, ws, id).await
}

/// A campaign of the workspace with its variants.
pub async fn get(db: &impl ConnectionTrait, workspace_id: i64, id: i64) -> Result<Campaign> {
    let campaign = records::get::<campaign::Entity>(db, workspace_id, id).await?;
    let variants = campaign_variant::Entity::find()
        .filter(campaign_variant::Column::CampaignId.eq(id))
        .order_by_asc(campaign_variant::Column::Id)
        .all(db)
        .await?;
    Ok(Campaign { campaign, variants })
}

/// Variants of many campaigns, by campaign.
pub async fn variants_of(
    db: &impl ConnectionTrait,
    campaign_ids: &[i64],
) -> Result<HashMap<i64, Vec<campaign_variant::Model>>> {
    let mut out: HashMap<i64, Vec<_>> = HashMap::new();
    for v in campaign_variant::Entity::find()
        .filter(campaign_variant::Column::CampaignId.is_in(campaign_ids.iter().copied()))
        .order_by_asc(campaign_variant::Column::Id)
        .all(db)
        .await?
    {
        out.entry(v.campaign_id).or_default().push(v);
    }
    Ok(out)
}

/// Contacts the segment holds now.
async fn audience_condition(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment_id: i64,
) -> Result<Condition> {
    let seg = records::get::<segment::Entity>(db, workspace_id, segment_id).await?;
    audiences::members(&seg, crate::clock::now())
}

/// Schedules a draft to start at `at` (now when `None` or past): checks that it can be
/// sent — a sender, valid variants, a segment with contacts in it — and queues its start.
pub async fn schedule(
    db: &DatabaseConnection,
    queue: &Queue,
    who: &Principal,
    id: i64,
    at: Option<DateTime<Utc>>,
) -> Result<campaign::Model> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let Campaign {
        campaign: c,
        variants,
    } = get(db, ws, id).await?;
    match status(&c) {
        CampaignStatus::Draft => {}
        CampaignStatus::Sent => {
            return Err(EngineError::Conflict(
                "the campaign was already sent".into(),
            ));
        }
        s => {
            return Err(EngineError::Conflict(format!(
                "the campaign is already {s}; it cannot be sent again"
            )));
        }
    }
    if variants.is_empty() {
        return Err(EngineError::invalid(
            "variants",
            "a campaign needs at least one variant",
        ));
    }
    for v in &variants {
        templates::check(&TemplateParts {
            subject: v.subject.clone(),
            html: v.html.clone(),
            text: v.text.clone(),
        })?;
    }
    if c.test_share.is_some() && variants.len() < 2 {
        return Err(EngineError::invalid(
            "abTest",
            "an A/B test needs at least two variants",
        ));
    }
    let condition = audience_condition(db, ws, c.segment_id).await?;
    let members = crate::platform::pagination::count(
        db,
        records::scoped::<contact::Entity>(ws, Deleted::Exclude).filter(condition),
    )
    .await?;
    if members == 0 {
        return Err(EngineError::invalid(
            "segmentId",
            "the segment has no contacts",
        ));
    }
    let now = clock::now();
    let at = at.filter(|t| *t > now).unwrap_or(now);
    let moved = campaign::Entity::update_many()
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Scheduled.as_str()),
        )
        .col_expr(campaign::Column::ScheduledAt, Expr::value(at))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.eq(CampaignStatus::Draft.as_str()))
        .exec(db)
        .await?;
    if moved.rows_affected == 0 {
        return Err(EngineError::Conflict(
            "the campaign is already being sent".into(),
        ));
    }
    queue
        .push(
            Job::LaunchCampaign {
                workspace_id: ws,
                campaign_id: id,
            },
            Some(at),
        )
        .await?;
    records::get::<campaign::Entity>(db, ws, id).await
}

async fn set_status(
    db: &impl ConnectionTrait,
    id: i64,
    from: &[CampaignStatus],
    to: CampaignStatus,
    reason: Option<String>,
) -> Result<bool> {
    let now = clock::now();
    let mut update = campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::value(to.as_str()))
        .col_expr(campaign::Column::StatusReason, Expr::value(reason))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.is_in(from.iter().map(|s| s.as_str())));
    if to == CampaignStatus::Sending {
        // The first move to sending is the start; a resume keeps it.
        update = update
            .col_expr(campaign::Column::ConsecutiveFailures, Expr::value(0))
            .col_expr(
                campaign::Column::StartedAt,
                Expr::col(campaign::Column::StartedAt).if_null(now),
            );
    }
    if matches!(to, CampaignStatus::Sent | CampaignStatus::Cancelled) {
        update = update.col_expr(campaign::Column::FinishedAt, Expr::value(now));
    }
    let moved = update.exec(db).await?.rows_affected > 0;
    if moved {
        tell_progress(db, id).await?;
    }
    Ok(moved)
}

/// Tells subscribers to `campaignProgress` that a campaign's state or counts changed.
pub(crate) async fn tell_progress(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    use crate::platform::live;
    let workspace: Option<i64> = campaign::Entity::find_by_id(id)
        .select_only()
        .column(campaign::Column::WorkspaceId)
        .into_tuple()
        .one(db)
        .await?;
    if let Some(workspace_id) = workspace {
        let notice = live::Notice {
            workspace_id,
            topic: live::Topic::Campaign,
            scope_id: id,
            object_id: id,
        };
        live::publish(db, notice).await?;
    }
    Ok(())
}

/// Pauses a scheduled or sending campaign: batches already running stop at their next
/// check, queued messages wait.
pub async fn pause(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<campaign::Model> {
    who.require(Scope::Write)?;
    let c = records::get::<campaign::Entity>(db, who.workspace_id, id).await?;
    if !set_status(
        db,
        id,
        &[CampaignStatus::Scheduled, CampaignStatus::Sending],
        CampaignStatus::Paused,
        None,
    )
    .await?
    {
        return Err(EngineError::Conflict(format!(
            "the campaign is {}; only a scheduled or sending campaign can be paused",
            c.status
        )));
    }
    records::get::<campaign::Entity>(db, who.workspace_id, id).await
}

/// Resumes a paused campaign where it stopped.
pub async fn resume(
    db: &DatabaseConnection,
    queue: &Queue,
    who: &Principal,
    id: i64,
) -> Result<campaign::Model> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let c = records::get::<campaign::Entity>(db, ws, id).await?;
    if status(&c) != CampaignStatus::Paused {
        return Err(EngineError::Conflict(format!(
            "the campaign is {}; only a paused campaign can be resumed",
            c.status
        )));
    }
    continue_sending(db, queue, &c).await?;
    records::get::<campaign::Entity>(db, ws, id).await
}

/// Takes a paused campaign up where it stopped: queued messages get send jobs again, a
/// pending A/B decision is scheduled again, a campaign that never started is launched.
async fn continue_sending(
    db: &DatabaseConnection,
    queue: &Queue,
    c: &campaign::Model,
) -> Result<()> {
    let (ws, id) = (c.workspace_id, c.id);
    let started = c.started_at.is_some();
    let to = if started {
        CampaignStatus::Sending
    } else {
        CampaignStatus::Scheduled
    };
    if !set_status(db, id, &[CampaignStatus::Paused], to, None).await? {
        return Err(EngineError::Conflict(
            "the campaign changed meanwhile".into(),
        ));
    }
    if started {
        enqueue_queued(db, queue, c).await?;
        if c.winner_variant_id.is_none() && has_state(db, id, MessageState::Held).await? {
            let due = c.started_at.unwrap_or_else(clock::now)
                + chrono::Duration::minutes(c.test_wait_minutes.unwrap_or(0) as i64);
            queue
                .push(
                    Job::PickWinner {
                        workspace_id: ws,
                        campaign_id: id,
                    },
                    Some(Ord::max(due, clock::now())),
                )
                .await?;
        }
    } else {
        let at = Ord::max(c.scheduled_at.unwrap_or_else(clock::now), clock::now());
        queue
            .push(
                Job::LaunchCampaign {
                    workspace_id: ws,
                    campaign_id: id,
                },
                Some(at),
            )
            .await?;
    }
    Ok(())
}

/// Job: after a campaign paused itself because sends kept failing, checks whether the
/// mail server answers again; if so the campaign continues, if not it looks again later.
/// A pause made by a person is left alone.
pub async fn resume_when_reachable(
    ctx: &Context,
    workspace_id: i64,
    id: i64,
    attempt: u32,
) -> Result<()> {
    let c = records::get::<campaign::Entity>(&ctx.db, workspace_id, id).await?;
    let auto = c
        .status_reason
        .as_deref()
        .is_some_and(|r| r.starts_with(AUTO_PAUSE));
    if status(&c) != CampaignStatus::Paused || !auto {
        return Ok(());
    }
    if ctx.outbound.mailer.reachable().await {
        tracing::info!(campaign = id, "the mail server is back; resuming");
        return continue_sending(&ctx.db, &ctx.queue, &c).await;
    }
    let wait = (ctx.outbound.probe_delay * 2u32.saturating_pow(Ord::min(attempt, 10)))
        .min(Duration::from_secs(600));
    ctx.queue
        .push(
            Job::ResumeWhenReachable {
                workspace_id,
                campaign_id: id,
                attempt: attempt + 1,
            },
            Some(clock::now() + chrono::Duration::from_std(wait).unwrap_or_default()),
        )
        .await
}

/// Cancels a campaign that has not finished; messages not yet sent never will be.
pub async fn cancel(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<campaign::Model> {
    who.require(Scope::Write)?;
    let c = records::get::<campaign::Entity>(db, who.workspace_id, id).await?;
    if !set_status(
        db,
        id,
        &[
            CampaignStatus::Draft,
            CampaignStatus::Scheduled,
            CampaignStatus::Sending,
            CampaignStatus::Paused,
        ],
        CampaignStatus::Cancelled,
        None,
    )
    .await?
    {
        return Err(EngineError::Conflict(format!(
            "the campaign is {}; it cannot be cancelled",
            c.status
        )));
    }
    campaign_message::Entity::update_many()
        .col_expr(
            campaign_message::Column::State,
            Expr::value(MessageState::Cancelled.as_str()),
        )
        .filter(campaign_message::Column::CampaignId.eq(id))
        .filter(
            campaign_message::Column::State
                .is_in([MessageState::Queued.as_str(), MessageState::Held.as_str()]),
        )
        .exec(db)
        .await?;
    records::get::<campaign::Entity>(db, who.workspace_id, id).await
}

async fn has_state(
    db: &impl ConnectionTrait,
    campaign_id: i64,
    state: MessageState,
) -> Result<bool> {
    Ok(campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::Id)
        .filter(campaign_message::Column::CampaignId.eq(campaign_id))
        .filter(campaign_message::Column::State.eq(state.as_str()))
        .limit(1)
        .into_tuple::<i64>()
        .one(db)
        .await?
        .is_some())
}

/// A number in [0, 1) fixed by (campaign, contact): the same person always lands in the
/// same test group and variant, whichever worker assigns them.
fn draw(campaign_id: i64, contact_id: i64) -> f64 {
    // SplitMix64 finaliser.
    let mut z = (campaign_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (contact_id as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant a draw in [0, 1) falls in, by weight.
fn pick_variant(variants: &[campaign_variant::Model], u: f64) -> i64 {
    let total: i64 = variants.iter().map(|v| v.weight as i64).sum();
    let mut at = u * total as f64;
    for v in variants {
        at -= v.weight as f64;
        if at < 0.0 {
            return v.id;
        }
    }
    variants.last().expect("at least one variant").id
}

/// Job: starts a scheduled campaign. The segment becomes message rows in one
/// transaction, so a crash leaves either all of them or none; running it again finds them
/// and only re-queues what is left.
pub async fn launch(ctx: &Context, workspace_id: i64, id: i64) -> Result<()> {
    let db = &ctx.db;
    let Campaign {
        campaign: c,
        variants,
    } = get(db, workspace_id, id).await?;
    match status(&c) {
        CampaignStatus::Scheduled => {
            if !set_status(
                db,
                id,
                &[CampaignStatus::Scheduled],
                CampaignStatus::Sending,
                None,
            )
            .await?
            {
                return Ok(());
            }
        }
        CampaignStatus::Sending => {}
        // Paused, cancelled or already sent: nothing to start. Resume queues it again.
        _ => return Ok(()),
    }
    let expanded = campaign_message::Entity::find()
        .filter(campaign_message::Column::CampaignId.eq(id))
        .limit(1)
        .one(db)
        .await?
        .is_some();
    if !expanded {
        let condition = audience_condition(db, workspace_id, c.segment_id).await?;
        let members: Vec<i64> = records::scoped::<contact::Entity>(workspace_id, Deleted::Exclude)
            .filter(condition)
            .select_only()
            .column(contact::Column::Id)
            .order_by_asc(contact::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
        let now = clock::now();
        let tx = crate::platform::db::write(db).await?;
        for chunk in members.chunks(1000) {
            let rows = chunk.iter().map(|&contact_id| {
                let u = draw(id, contact_id);
                let (state, variant) = match c.test_share {
                    Some(share) if u >= share => (MessageState::Held, None),
                    // Within the test group the draw is rescaled so variants split it by weight.
                    Some(share) => (
                        MessageState::Queued,
                        Some(pick_variant(&variants, u / share)),
                    ),
                    None => (MessageState::Queued, Some(pick_variant(&variants, u))),
                };
                campaign_message::ActiveModel {
                    workspace_id: Set(workspace_id),
                    campaign_id: Set(id),
                    contact_id: Set(contact_id),
                    variant_id: Set(variant),
                    state: Set(state.as_str().into()),
                    attempts: Set(0),
                    queued_at: Set(now),
                    opens: Set(0),
                    clicks: Set(0),
                    ..Default::default()
                }
            });
            campaign_message::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        campaign_message::Column::CampaignId,
                        campaign_message::Column::ContactId,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(
            campaign = id,
            recipients = members.len(),
            "campaign started"
        );
        if let (Some(_), Some(wait)) = (c.test_share, c.test_wait_minutes) {
            ctx.queue
                .push(
                    Job::PickWinner {
                        workspace_id,
                        campaign_id: id,
                    },
                    Some(clock::now() + chrono::Duration::minutes(wait as i64)),
                )
                .await?;
        }
    }
    let queued = enqueue_queued(db, &ctx.queue, &c).await?;
    if queued == 0 {
        finish(ctx, &c).await?;
    }
    Ok(())
}

/// Queues send jobs for every queued message, spread out in time so that all workers
/// together keep to the campaign's rate. Returns how many messages it queued.
async fn enqueue_queued(
    db: &impl ConnectionTrait,
    queue: &Queue,
    c: &campaign::Model,
) -> Result<usize> {
    let ids: Vec<i64> = campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::Id)
        .filter(campaign_message::Column::CampaignId.eq(c.id))
        .filter(campaign_message::Column::State.eq(MessageState::Queued.as_str()))
        .order_by_asc(campaign_message::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let batch = match c.rate_per_second {
        Some(rate) => (rate as usize).clamp(1, BATCH_SIZE),
        None => BATCH_SIZE,
    };
    let start = clock::now();
    for (i, chunk) in ids.chunks(batch).enumerate() {
        let at = c.rate_per_second.map(|rate| {
            start + chrono::Duration::milliseconds((i * batch) as i64 * 1000 / rate as i64)
        });
        queue
            .push(
                Job::SendBatch {
                    workspace_id: c.workspace_id,
                    campaign_id: c.id,
                    message_ids: chunk.to_vec(),
                },
                at,
            )
            .await?;
    }
    Ok(ids.len())
}

/// Job: ends an A/B test — the variant with the best open (or click) rate among the test
/// messages sent wins, ties to the first — and queues the held messages with it.
pub async fn pick_winner(ctx: &Context, workspace_id: i64, id: i64) -> Result<()> {
    let db = &ctx.db;
    let Campaign {
        campaign: c,
        variants,
    } = get(db, workspace_id, id).await?;
    if status(&c) != CampaignStatus::Sending {
        return Ok(());
    }
    if c.winner_variant_id.is_some() {
        // Decided already (this is a second run): only make sure the rest is on its way.
        if enqueue_queued(db, &ctx.queue, &c).await? == 0 {
            finish(ctx, &c).await?;
        }
        return Ok(());
    }
    let metric = WinnerMetric::from_db(c.winner_metric.as_deref().unwrap_or("open"));
    let stats = stats(db, workspace_id, id).await?;
    let rate = |s: &VariantStats| match metric {
        WinnerMetric::Open => s.open_rate(),
        WinnerMetric::Click => s.click_rate(),
    };
    let mut best: Option<(i64, f64)> = None;
    for v in &variants {
        let r = stats
            .iter()
            .find(|s| s.variant_id == Some(v.id))
            .map(rate)
            .unwrap_or(0.0);
        if best.is_none_or(|(_, b)| r > b) {
            best = Some((v.id, r));
        }
    }
    let Some((winner, _)) = best else {
        return Ok(());
    };
    campaign::Entity::update_many()
        .col_expr(campaign::Column::WinnerVariantId, Expr::value(winner))
        .filter(campaign::Column::Id.eq(id))
        .exec(db)
        .await?;
    campaign_message::Entity::update_many()
        .col_expr(
            campaign_message::Column::State,
            Expr::value(MessageState::Queued.as_str()),
        )
        .col_expr(campaign_message::Column::VariantId, Expr::value(winner))
        .filter(campaign_message::Column::CampaignId.eq(id))
        .filter(campaign_message::Column::State.eq(MessageState::Held.as_str()))
        .exec(db)
        .await?;
    tracing::info!(campaign = id, winner, "A/B test decided");
    if enqueue_queued(db, &ctx.queue, &c).await? == 0 {
        finish(ctx, &c).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(id: i64, weight: i32) -> campaign_variant::Model {
        campaign_variant::Model {
            id,
            workspace_id: 1,
            campaign_id: 1,
            name: id.to_string(),
            weight,
            subject: String::new(),
            html: String::new(),
            text: String::new(),
        }
    }

    #[test]
    fn draws_are_fixed_and_spread_evenly() {
        assert_eq!(draw(3, 7), draw(3, 7));
        assert_ne!(draw(3, 7), draw(4, 7));
        let n = 20_000;
        let below: usize = (0..n).filter(|&c| draw(9, c) < 0.25).count();
        assert!((below as f64 / n as f64 - 0.25).abs() < 0.015, "{below}");
    }

    #[test]
    fn variants_split_by_weight() {
        let vs = [variant(1, 1), variant(2, 3)];
        let n = 20_000;
        let second = (0..n)
            .filter(|&c| pick_variant(&vs, draw(5, c)) == 2)
            .count();
        assert!((second as f64 / n as f64 - 0.75).abs() < 0.015, "{second}");
        assert_eq!(pick_variant(&vs, 0.0), 1);
        assert_eq!(pick_variant(&vs, 0.999_999), 2);
    }

    #[test]
    fn rates_are_per_message_sent() {
        let s = VariantStats {
            sent: 8,
            bounced: 2,
            unique_opens: 5,
            unique_clicks: 1,
            ..Default::default()
        };
        assert_eq!(s.open_rate(), 0.5);
        assert_eq!(s.click_rate(), 0.1);
        assert_eq!(VariantStats::default().open_rate(), 0.0);
    }
}
