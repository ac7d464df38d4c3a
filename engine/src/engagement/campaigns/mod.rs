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
use crate::engagement::consent::{self, Decision};
use crate::engagement::outbound::{Audience, Context};
use crate::engagement::suppression;
use crate::engagement::templates::{self, TemplateParts};
use crate::engagement::tracking::{
    CLICKED_SUBJECT, Links, MAILBOX_GONE, OPENED_SUBJECT, track_html,
};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::email::{self, Delivery};
use crate::platform::links::{self, Action, Claim};
use crate::platform::queue::{Job, Queue};
use crate::platform::records::{self, Deleted};
use crate::values::{
    ActivityKind, CampaignStatus, ConsentPurpose, Direction, EmailAddress, MessageState, Patch,
    Scope, SuppressionReason, Text, WinnerMetric,
};

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
    audience: &dyn Audience,
    workspace_id: i64,
    segment_id: i64,
) -> Result<Condition> {
    let seg = records::get::<segment::Entity>(db, workspace_id, segment_id).await?;
    audience.condition(workspace_id, &seg.filter)
}

/// Schedules a draft to start at `at` (now when `None` or past): checks that it can be
/// sent — a sender, valid variants, a segment with contacts in it — and queues its start.
pub async fn schedule(
    db: &DatabaseConnection,
    queue: &Queue,
    audience: &dyn Audience,
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
    let condition = audience_condition(db, audience, ws, c.segment_id).await?;
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
    Ok(update.exec(db).await?.rows_affected > 0)
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
        let condition = audience_condition(
            db,
            ctx.outbound.audience.as_ref(),
            workspace_id,
            c.segment_id,
        )
        .await?;
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

/// What one message needs to be sent.
struct Recipient {
    message: campaign_message::Model,
    person: contact::Model,
    firm: Option<company::Model>,
}

async fn recipients(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    campaign_id: i64,
    message_ids: &[i64],
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
    Ok(messages
        .into_iter()
        .filter_map(|message| {
            let person = people.get(&message.contact_id)?.clone();
            let firm = person.company_id.and_then(|id| firms.get(&id).cloned());
            Some(Recipient {
                message,
                person,
                firm,
            })
        })
        .collect())
}

/// Moves a message from `from` to `to`; false when another worker got there first.
async fn transition(
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
enum Attempt {
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
async fn send_one(
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
        templates::context(&r.person, r.firm.as_ref(), &unsubscribe),
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
async fn note_outcome(
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

async fn current_status(db: &impl ConnectionTrait, id: i64) -> Result<CampaignStatus> {
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
const MARK_SENT_EVERY: usize = 32;

/// How long an accepted message may wait to be recorded: at a fast rate a group fills in
/// milliseconds; at a slow one this keeps what a crash can leave unrecorded to the
/// messages of the last fraction of a second.
const MARK_SENT_WITHIN: Duration = Duration::from_millis(100);

/// Records messages the mail server accepted. They were claimed (durably) before sending,
/// so this write need not wait for the disk: if it is lost in a crash the rows stay
/// `sending` and end as `unknown`, never sent twice. On PostgreSQL it therefore commits
/// asynchronously, which halves the fsyncs per message.
async fn mark_sent(db: &DatabaseConnection, ids: &mut Vec<i64>) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let tx = crate::platform::db::write(db).await?;
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        tx.execute_unprepared("SET LOCAL synchronous_commit TO OFF")
            .await?;
    }
    campaign_message::Entity::update_many()
        .col_expr(
            campaign_message::Column::State,
            Expr::value(MessageState::Sent.as_str()),
        )
        .col_expr(campaign_message::Column::SentAt, Expr::value(clock::now()))
        .filter(campaign_message::Column::Id.is_in(ids.drain(..)))
        .filter(campaign_message::Column::State.eq(MessageState::Sending.as_str()))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Messages of one batch in flight at once: a mail server answers each in a round trip
/// or two, so sending one at a time would leave the connection idle most of the time.
const PARALLEL_SENDS: usize = 16;

/// What the sends of one batch share.
#[derive(Default)]
struct BatchProgress {
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
async fn next_send_slot(db: &DatabaseConnection, campaign_id: i64, rate: i32) -> Result<Duration> {
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
async fn paced_send(
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
            mark_sent(&ctx.db, &mut progress.take_accepted(false)).await?;
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
        sequence: false,
    };
    settle_interrupted(db, id, Some(ctx.outbound.dead_after), None).await?;
    let batch = recipients(db, workspace_id, id, message_ids).await?;
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
    mark_sent(db, &mut progress.take_accepted(true)).await?;
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
async fn claim(db: &DatabaseConnection, message_id: i64, worker: &str) -> Result<bool> {
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
async fn settle_interrupted(
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
async fn finish(ctx: &Context, c: &campaign::Model) -> Result<()> {
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

/// Counts of one variant (or of the held-back rest, `variant_id = None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantStats {
    /// The variant.
    pub variant_id: Option<i64>,
    /// Messages assigned.
    pub recipients: u64,
    /// Still waiting (queued, held or being sent).
    pub pending: u64,
    /// Accepted by the mail server.
    pub sent: u64,
    /// Not sent: consent, suppression, a deleted contact.
    pub skipped: u64,
    /// Refused by the mail server.
    pub failed: u64,
    /// Handed to the mail server, but whether it took them is not known (the connection
    /// broke mid-way, or the worker died before recording the answer); never sent again.
    pub unknown: u64,
    /// Bounced after sending.
    pub bounced: u64,
    /// Recipients who opened (or clicked) at least once.
    pub unique_opens: u64,
    /// Recipients who clicked at least once.
    pub unique_clicks: u64,
    /// Recipients who unsubscribed from it.
    pub unsubscribes: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl VariantStats {
    /// Messages that reached the server: sent, and later bounced.
    pub fn delivered_or_bounced(&self) -> u64 {
        self.sent + self.bounced
    }
    /// Unique opens per sent message.
    pub fn open_rate(&self) -> f64 {
        ratio(self.unique_opens, self.delivered_or_bounced())
    }
    /// Unique clicks per sent message.
    pub fn click_rate(&self) -> f64 {
        ratio(self.unique_clicks, self.delivered_or_bounced())
    }
    /// Bounces per sent message.
    pub fn bounce_rate(&self) -> f64 {
        ratio(self.bounced, self.delivered_or_bounced())
    }
    /// Unsubscribes per sent message.
    pub fn unsubscribe_rate(&self) -> f64 {
        ratio(self.unsubscribes, self.delivered_or_bounced())
    }
    fn add(&mut self, o: &VariantStats) {
        self.recipients += o.recipients;
        self.pending += o.pending;
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.unknown += o.unknown;
        self.bounced += o.bounced;
        self.unique_opens += o.unique_opens;
        self.unique_clicks += o.unique_clicks;
        self.unsubscribes += o.unsubscribes;
    }
}

/// Per-variant counts of a campaign (held-back messages under `None`), in one grouped
/// query.
pub async fn stats(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Vec<VariantStats>> {
    type Row = (Option<i64>, String, i64, i64, i64, i64);
    let rows: Vec<Row> = campaign_message::Entity::find()
        .select_only()
        .column(campaign_message::Column::VariantId)
        .column(campaign_message::Column::State)
        .column_as(Expr::col(campaign_message::Column::Id).count(), "n")
        .column_as(
            Expr::col(campaign_message::Column::OpenedAt).count(),
            "opened",
        )
        .column_as(
            Expr::col(campaign_message::Column::ClickedAt).count(),
            "clicked",
        )
        .column_as(
            Expr::col(campaign_message::Column::UnsubscribedAt).count(),
            "unsubscribed",
        )
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::CampaignId.eq(id))
        .group_by(campaign_message::Column::VariantId)
        .group_by(campaign_message::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let mut by: HashMap<Option<i64>, VariantStats> = HashMap::new();
    for (variant, state, n, opened, clicked, unsubscribed) in rows {
        let s = by.entry(variant).or_insert_with(|| VariantStats {
            variant_id: variant,
            ..Default::default()
        });
        let n = n as u64;
        s.recipients += n;
        match MessageState::from_db(&state) {
            MessageState::Queued | MessageState::Held | MessageState::Sending => s.pending += n,
            MessageState::Sent => s.sent += n,
            MessageState::Skipped => s.skipped += n,
            MessageState::Failed => s.failed += n,
            MessageState::Unknown => s.unknown += n,
            MessageState::Bounced => s.bounced += n,
            MessageState::Cancelled => {}
        }
        s.unique_opens += opened as u64;
        s.unique_clicks += clicked as u64;
        s.unsubscribes += unsubscribed as u64;
    }
    let mut out: Vec<VariantStats> = by.into_values().collect();
    out.sort_by_key(|s| (s.variant_id.is_none(), s.variant_id));
    Ok(out)
}

/// The sum of per-variant counts.
pub fn total(stats: &[VariantStats]) -> VariantStats {
    let mut t = VariantStats::default();
    for s in stats {
        t.add(s);
    }
    t
}

/// Messages of a campaign, optionally in one state, by id after `after`.
pub async fn messages(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
    state: Option<MessageState>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<campaign_message::Model>> {
    let mut q = campaign_message::Entity::find()
        .filter(campaign_message::Column::WorkspaceId.eq(workspace_id))
        .filter(campaign_message::Column::CampaignId.eq(id));
    if let Some(state) = state {
        q = q.filter(campaign_message::Column::State.eq(state.as_str()));
    }
    if let Some(after) = after {
        q = q.filter(campaign_message::Column::Id.gt(after));
    }
    Ok(q.order_by_asc(campaign_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

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
