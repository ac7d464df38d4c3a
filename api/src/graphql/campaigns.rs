//! Campaigns on the graph: drafts, scheduling, pause/resume/cancel, per-variant stats and
//! message states, and the job queue's dead letters.

use async_graphql::{
    Context, ErrorExtensions, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject,
};
use chrono::{DateTime, Utc};
use rapport_engine::engagement::campaigns::{self, VariantStats};
use rapport_engine::platform::queue::{self as jobs, Queue};
use rapport_engine::platform::records::{self, Deleted};
use rapport_engine::values::{self, Patch, Scope};
use rapport_schema as s;
use sea_orm::{DatabaseConnection, QueryOrder};

use crate::error::{OrGraphql, invalid};
use crate::graphql::audiences::Segment;
use crate::graphql::enums::{CampaignStatus, MessageState, WinnerMetric};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::{Contact, principal};

/// One A/B variant: a saved template (copied when saved) or the parts inline.
#[derive(InputObject)]
pub struct CampaignVariantInput {
    pub name: Option<String>,
    /// Share of the audience relative to the other variants (default 1).
    pub weight: Option<i32>,
    pub template_id: Option<ID>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// Send the variants to a share of the audience first, the winner to the rest later.
#[derive(InputObject)]
pub struct AbTestInput {
    /// Share of the audience in the test, between 0 and 1.
    pub test_share: f64,
    /// Minutes to wait before picking the winner.
    pub wait_minutes: i32,
    #[graphql(default_with = "WinnerMetric::Open")]
    pub metric: WinnerMetric,
}

/// A campaign as a client writes it; on update, omitted fields stay as they are.
#[derive(InputObject)]
pub struct CampaignInput {
    pub name: Option<String>,
    pub segment_id: Option<ID>,
    pub from_email: Option<String>,
    pub from_name: MaybeUndefined<String>,
    /// Messages per second at most (across all workers).
    pub rate_per_second: MaybeUndefined<i32>,
    /// Replaces all variants.
    pub variants: Option<Vec<CampaignVariantInput>>,
    pub ab_test: MaybeUndefined<AbTestInput>,
    /// The email topic it is about: contacts who opted out of it are skipped.
    pub topic_id: MaybeUndefined<ID>,
}

fn patch<T, U>(m: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Patch<U> {
    match m {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(v) => Patch::Set(f(v)),
    }
}

impl CampaignInput {
    fn into_engine(self) -> Result<campaigns::CampaignInput> {
        let variants = match self.variants {
            None => None,
            Some(list) => Some(
                list.into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        Ok(campaigns::VariantInput {
                            name: v.name,
                            weight: v.weight,
                            template_id: v
                                .template_id
                                .map(|t| parse_id(&format!("variants[{i}].templateId"), &t))
                                .transpose()?,
                            subject: v.subject,
                            html: v.html,
                            text: v.text,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        Ok(campaigns::CampaignInput {
            name: self.name,
            segment_id: self
                .segment_id
                .map(|id| parse_id("segmentId", &id))
                .transpose()?,
            from_email: self.from_email,
            from_name: patch(self.from_name, |n| n),
            rate_per_second: patch(self.rate_per_second, |r| r),
            variants,
            ab_test: patch(self.ab_test, |t| campaigns::AbTest {
                test_share: t.test_share,
                wait_minutes: t.wait_minutes,
                metric: t.metric.into(),
            }),
            topic_id: match self.topic_id {
                MaybeUndefined::Undefined => Patch::Keep,
                MaybeUndefined::Null => Patch::Clear,
                MaybeUndefined::Value(id) => Patch::Set(parse_id("topicId", &id)?),
            },
        })
    }
}

/// One version of a campaign's email.
pub struct CampaignVariant(pub s::campaign_variant::Model);

#[Object]
impl CampaignVariant {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn weight(&self) -> i32 {
        self.0.weight
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn html(&self) -> &str {
        &self.0.html
    }
    async fn text(&self) -> &str {
        &self.0.text
    }
}

/// The A/B test of a campaign.
#[derive(SimpleObject)]
pub struct AbTest {
    pub test_share: f64,
    pub wait_minutes: i32,
    pub metric: WinnerMetric,
}

/// Counts and rates of one variant, of the held-back rest (no variant), or of the whole
/// campaign.
pub struct CampaignStats(VariantStats);

#[Object]
impl CampaignStats {
    /// The variant; none for the whole campaign or for messages held for the A/B winner.
    async fn variant_id(&self) -> Option<ID> {
        self.0.variant_id.map(to_id)
    }
    async fn recipients(&self) -> u64 {
        self.0.recipients
    }
    /// Queued, held for the A/B winner, or being sent.
    async fn pending(&self) -> u64 {
        self.0.pending
    }
    async fn sent(&self) -> u64 {
        self.0.sent
    }
    /// Not sent because consent was missing or withdrawn, the address suppressed, or the
    /// contact deleted by send time.
    async fn skipped(&self) -> u64 {
        self.0.skipped
    }
    /// Refused by the mail server.
    async fn failed(&self) -> u64 {
        self.0.failed
    }
    /// Handed to the mail server without learning whether it took them (the connection
    /// broke, or the worker died before recording the answer); never sent again.
    async fn unknown(&self) -> u64 {
        self.0.unknown
    }
    async fn bounced(&self) -> u64 {
        self.0.bounced
    }
    async fn unique_opens(&self) -> u64 {
        self.0.unique_opens
    }
    async fn unique_clicks(&self) -> u64 {
        self.0.unique_clicks
    }
    async fn unsubscribes(&self) -> u64 {
        self.0.unsubscribes
    }
    /// Unique opens per message sent (bounces included).
    async fn open_rate(&self) -> f64 {
        self.0.open_rate()
    }
    async fn click_rate(&self) -> f64 {
        self.0.click_rate()
    }
    async fn bounce_rate(&self) -> f64 {
        self.0.bounce_rate()
    }
    async fn unsubscribe_rate(&self) -> f64 {
        self.0.unsubscribe_rate()
    }
}

/// One campaign email to one contact.
pub struct CampaignMessage(pub s::campaign_message::Model);

#[Object]
impl CampaignMessage {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(records::get_with::<s::contact::Entity>(
            db,
            who.workspace_id,
            self.0.contact_id,
            Deleted::Include,
        )
        .await
        .ok()
        .map(Contact))
    }
    async fn contact_id(&self) -> ID {
        to_id(self.0.contact_id)
    }
    async fn variant_id(&self) -> Option<ID> {
        self.0.variant_id.map(to_id)
    }
    async fn state(&self) -> MessageState {
        MessageState::from_db(&self.0.state)
    }
    /// Why it was skipped or failed, or why it was put back.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn queued_at(&self) -> DateTime<Utc> {
        self.0.queued_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.0.failed_at
    }
    async fn bounced_at(&self) -> Option<DateTime<Utc>> {
        self.0.bounced_at
    }
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.0.opened_at
    }
    async fn clicked_at(&self) -> Option<DateTime<Utc>> {
        self.0.clicked_at
    }
    async fn unsubscribed_at(&self) -> Option<DateTime<Utc>> {
        self.0.unsubscribed_at
    }
    async fn opens(&self) -> i32 {
        self.0.opens
    }
    async fn clicks(&self) -> i32 {
        self.0.clicks
    }
}

/// A marketing email to a segment.
pub struct Campaign(pub campaigns::Campaign);

#[Object]
impl Campaign {
    async fn id(&self) -> ID {
        to_id(self.0.campaign.id)
    }
    async fn name(&self) -> &str {
        &self.0.campaign.name
    }
    async fn segment(&self, ctx: &Context<'_>) -> Result<Option<Segment>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(records::get_with::<s::segment::Entity>(
            db,
            who.workspace_id,
            self.0.campaign.segment_id,
            Deleted::Include,
        )
        .await
        .ok()
        .map(Segment))
    }
    /// The email topic it is about.
    async fn topic(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<crate::graphql::consent::EmailTopic>> {
        let Some(id) = self.0.campaign.topic_id else {
            return Ok(None);
        };
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            rapport_engine::engagement::topics::get(db, who.workspace_id, id)
                .await
                .ok()
                .map(crate::graphql::consent::EmailTopic),
        )
    }
    async fn from_email(&self) -> &str {
        &self.0.campaign.from_email
    }
    #[graphql(name = "fromName")]
    async fn sender_name(&self) -> Option<&str> {
        self.0.campaign.from_name.as_deref()
    }
    async fn status(&self) -> CampaignStatus {
        CampaignStatus::from_db(&self.0.campaign.status)
    }
    /// Why Rapport paused it, when it did (e.g. consecutive send failures).
    async fn status_reason(&self) -> Option<&str> {
        self.0.campaign.status_reason.as_deref()
    }
    async fn scheduled_at(&self) -> Option<DateTime<Utc>> {
        self.0.campaign.scheduled_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.campaign.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.campaign.finished_at
    }
    async fn rate_per_second(&self) -> Option<i32> {
        self.0.campaign.rate_per_second
    }
    async fn ab_test(&self) -> Option<AbTest> {
        let c = &self.0.campaign;
        Some(AbTest {
            test_share: c.test_share?,
            wait_minutes: c.test_wait_minutes?,
            metric: WinnerMetric::from_db(c.winner_metric.as_deref().unwrap_or("open")),
        })
    }
    /// The A/B test's winner, once picked.
    async fn winner_variant_id(&self) -> Option<ID> {
        self.0.campaign.winner_variant_id.map(to_id)
    }
    async fn variants(&self) -> Vec<CampaignVariant> {
        self.0
            .variants
            .iter()
            .cloned()
            .map(CampaignVariant)
            .collect()
    }
    /// Totals over all messages.
    async fn stats(&self, ctx: &Context<'_>) -> Result<CampaignStats> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let per = campaigns::stats(db, who.workspace_id, self.0.campaign.id)
            .await
            .gql()?;
        Ok(CampaignStats(campaigns::total(&per)))
    }
    /// Counts per variant; messages held for an A/B winner appear without a variant.
    async fn variant_stats(&self, ctx: &Context<'_>) -> Result<Vec<CampaignStats>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(campaigns::stats(db, who.workspace_id, self.0.campaign.id)
            .await
            .gql()?
            .into_iter()
            .map(CampaignStats)
            .collect())
    }
    /// Its messages by id, optionally in one state (`after`: the last id of the previous
    /// page).
    async fn messages(
        &self,
        ctx: &Context<'_>,
        state: Option<MessageState>,
        #[graphql(default = 100)] first: i32,
        after: Option<ID>,
    ) -> Result<Vec<CampaignMessage>> {
        if !(1..=1000).contains(&first) {
            return Err(invalid("first", "must be between 1 and 1000"));
        }
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let after = after.map(|a| parse_id("after", &a)).transpose()?;
        Ok(campaigns::messages(
            db,
            who.workspace_id,
            self.0.campaign.id,
            state.map(values::MessageState::from),
            after,
            first as u64,
        )
        .await
        .gql()?
        .into_iter()
        .map(CampaignMessage)
        .collect())
    }
    /// Whom it would reach if it were sent now, and why the others would be skipped (the
    /// rules the send applies per message). Counts up to 200,000 segment members, so it
    /// costs as much as a few large pages.
    #[graphql(complexity = 25_000)]
    async fn reach(&self, ctx: &Context<'_>) -> Result<CampaignReach> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let r = campaigns::reach(db, who.workspace_id, &self.0)
            .await
            .gql()?;
        Ok(CampaignReach {
            members: r.members,
            will_receive: r.will_receive,
            no_address: r.no_address,
            suppressed: r.suppressed,
            no_consent: r.no_consent,
            topic_opted_out: r.topic_opted_out,
            complete: r.complete,
        })
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.campaign.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.campaign.updated_at
    }
}

/// Test emails a workspace may send: [`TEST_SENDS_PER_HOUR`] an hour, all at once if it
/// likes.
pub struct TestSendBudget(pub crate::rate_limit::Buckets<i64>);

/// Test emails (one per variant) a workspace may send an hour.
pub const TEST_SENDS_PER_HOUR: u32 = 30;

impl Default for TestSendBudget {
    fn default() -> Self {
        let per_hour = f64::from(TEST_SENDS_PER_HOUR);
        Self(crate::rate_limit::Buckets::new(per_hour / 3600.0, per_hour))
    }
}

/// Whom a campaign would reach now.
#[derive(SimpleObject)]
pub struct CampaignReach {
    /// Contacts in the segment now.
    pub members: u64,
    /// Of those, how many would be sent the email.
    pub will_receive: u64,
    /// Skipped: no valid email address.
    pub no_address: u64,
    /// Skipped: the address is on the suppression list.
    pub suppressed: u64,
    /// Skipped: no granted marketing consent (none on record, pending, denied, withdrawn).
    pub no_consent: u64,
    /// Skipped: opted out of the campaign's topic.
    pub topic_opted_out: u64,
    /// Whether every member was counted (false past 200,000).
    pub complete: bool,
}

/// A background job that used up its attempts.
pub struct FailedJob(jobs::FailedJob);

#[Object]
impl FailedJob {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// What the job was, as stored.
    async fn job(&self) -> Json<serde_json::Value> {
        Json(serde_json::to_value(&self.0.job).unwrap_or_default())
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.0.failed_at
    }
}

async fn load(ctx: &Context<'_>, id: i64) -> Result<Campaign> {
    let who = principal(ctx)?;
    let db = ctx.data_unchecked::<DatabaseConnection>();
    Ok(Campaign(
        campaigns::get(db, who.workspace_id, id).await.gql()?,
    ))
}

/// Reading campaigns and the queue's dead letters.
#[derive(Default)]
pub struct CampaignQuery;

#[Object]
impl CampaignQuery {
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        load(ctx, parse_id("id", &id)?).await
    }
    /// Campaigns, newest first, optionally in one status (at most 500). Each costs what
    /// it selects, as a page of 50 would.
    #[graphql(complexity = "50 * child_complexity")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        status: Option<CampaignStatus>,
    ) -> Result<Vec<Campaign>> {
        use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let mut q = records::scoped::<s::campaign::Entity>(who.workspace_id, Deleted::Exclude);
        if let Some(st) = status {
            q = q.filter(s::campaign::Column::Status.eq(values::CampaignStatus::from(st).as_str()));
        }
        let rows = q
            .order_by_desc(s::campaign::Column::Id)
            .limit(500)
            .all(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
        let mut variants = campaigns::variants_of(db, &ids).await.gql()?;
        Ok(rows
            .into_iter()
            .map(|c| {
                let v = variants.remove(&c.id).unwrap_or_default();
                Campaign(campaigns::Campaign {
                    campaign: c,
                    variants: v,
                })
            })
            .collect())
    }
    /// Background jobs of this workspace that used up their attempts, newest first.
    async fn failed_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<FailedJob>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            jobs::failed(db, who.workspace_id, first.clamp(1, 1000) as u64)
                .await
                .gql()?
                .into_iter()
                .map(FailedJob)
                .collect(),
        )
    }
}

/// Writing campaigns.
#[derive(Default)]
pub struct CampaignMutation;

fn queue(ctx: &Context<'_>) -> Result<Queue> {
    Queue::new(ctx.data_unchecked::<DatabaseConnection>()).gql()
}

#[Object]
impl CampaignMutation {
    /// Saves a draft. Variant templates are checked now: one that does not parse or names
    /// an unknown variable is refused with the variant and part named.
    async fn create_campaign(&self, ctx: &Context<'_>, input: CampaignInput) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Campaign(
            campaigns::create(db, who, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    /// Changes a draft.
    async fn update_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CampaignInput,
    ) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Campaign(
            campaigns::update(db, who, parse_id("id", &id)?, input.into_engine()?)
                .await
                .gql()?,
        ))
    }
    /// Schedules a draft for `at` (now when omitted). Refused when the segment is empty
    /// or the campaign is already scheduled, sending or sent.
    async fn schedule_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at: Option<DateTime<Utc>>,
    ) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let id = parse_id("id", &id)?;
        campaigns::schedule(db, &queue(ctx)?, who, id, at)
            .await
            .gql()?;
        load(ctx, id).await
    }
    /// Starts sending a draft now.
    async fn send_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let id = parse_id("id", &id)?;
        campaigns::schedule(db, &queue(ctx)?, who, id, None)
            .await
            .gql()?;
        load(ctx, id).await
    }
    async fn pause_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let id = parse_id("id", &id)?;
        campaigns::pause(db, who, id).await.gql()?;
        load(ctx, id).await
    }
    async fn resume_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let id = parse_id("id", &id)?;
        campaigns::resume(db, &queue(ctx)?, who, id).await.gql()?;
        load(ctx, id).await
    }
    /// Stops a campaign for good; what was not sent yet never will be.
    async fn cancel_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let id = parse_id("id", &id)?;
        campaigns::cancel(db, who, id).await.gql()?;
        load(ctx, id).await
    }
    /// Moves a draft or finished campaign to the trash.
    async fn delete_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = principal(ctx)?;
        who.require(Scope::Write).gql()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let c = records::get::<s::campaign::Entity>(db, who.workspace_id, parse_id("id", &id)?)
            .await
            .gql()?;
        if matches!(
            values::CampaignStatus::from_db(&c.status),
            values::CampaignStatus::Scheduled
                | values::CampaignStatus::Sending
                | values::CampaignStatus::Paused
        ) {
            return Err(crate::error::to_graphql(
                rapport_engine::EngineError::Conflict(
                    "cancel the campaign before deleting it".into(),
                ),
            ));
        }
        records::soft_delete::<s::campaign::Entity>(db, who.workspace_id, c.id)
            .await
            .gql()?;
        Ok(id)
    }
    /// Sends each variant, rendered for `contactId` (default: the segment's first member),
    /// to `to` with `[Test]` before the subject, straight through the mailer. Its links do
    /// nothing and no consent applies: the mail reaches the marketer, not the contact, so
    /// `to` must be the address of a person of this workspace, not suppressed. A workspace
    /// sends at most 30 test emails an hour (else RATE_LIMITED). Returns how many went.
    async fn send_campaign_test(
        &self,
        ctx: &Context<'_>,
        id: ID,
        to: String,
        contact_id: Option<ID>,
    ) -> Result<i32> {
        let who = principal(ctx)?;
        who.require(Scope::Write).gql()?;
        let to = values::EmailAddress::parse("to", &to).gql()?;
        let sample = contact_id.map(|c| parse_id("contactId", &c)).transpose()?;
        let Some(mail) = ctx.data_unchecked::<Option<crate::graphql::Mail>>() else {
            return Err(crate::error::to_graphql(
                rapport_engine::EngineError::internal(
                    "a test send was asked of a server with no mailer configured",
                ),
            ));
        };
        let c = load(ctx, parse_id("id", &id)?).await?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        // Whom first, so a refused address costs nothing of the budget.
        campaigns::test_recipient(db, who.workspace_id, &to)
            .await
            .gql()?;
        // A workspace sends a few test mails an hour, one per variant, whatever its keys.
        if let Err(wait) = ctx
            .data_unchecked::<TestSendBudget>()
            .0
            .take(who.workspace_id, c.0.variants.len().max(1) as f64)
        {
            return Err(async_graphql::Error::new(format!(
                "too many test emails; try again in {} s",
                wait.as_secs().max(1)
            ))
            .extend_with(|_, e| e.set("code", crate::error::code::RATE_LIMITED)));
        }
        let sent = campaigns::send_test(db, &mail.mailer, who, &c.0, &to, sample)
            .await
            .gql()?;
        Ok(sent as i32)
    }
    /// Puts a failed job back in the queue with fresh attempts (admin).
    async fn retry_job(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = principal(ctx)?;
        who.require(Scope::Admin).gql()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        jobs::retry(db, who.workspace_id, &id).await.gql()?;
        Ok(id)
    }
}
