//! Drip sequences as objects of the graph: a sequence, its versions and per-step stats,
//! one contact's enrollment with its history and messages. The root fields that read and
//! change them are in `graphql::sequences`.

use rapport_engine::engagement::sequences::{self, EnrollmentFilter, StepStats};
use rapport_engine::platform::records;
use sea_orm::DatabaseConnection;

use super::*;

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

/// A drip sequence and the version new enrollments start on.
pub struct Sequence(pub sequences::Sequence);

#[Object]
impl Sequence {
    async fn id(&self) -> ID {
        to_id(self.0.sequence.id)
    }
    async fn name(&self) -> &str {
        &self.0.sequence.name
    }
    async fn status(&self) -> SequenceStatus {
        SequenceStatus::from_db(&self.0.sequence.status)
    }
    /// The current version's number.
    async fn version(&self) -> i32 {
        self.0.version.version
    }
    /// The current version's definition, the import/export format.
    async fn definition(&self) -> Json<serde_json::Value> {
        Json(self.0.version.definition.clone())
    }
    /// Every saved version, oldest first.
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<SequenceVersion>> {
        let who = principal(ctx)?;
        Ok(
            sequences::versions(db(ctx), who.workspace_id, self.0.sequence.id)
                .await
                .gql()?
                .into_iter()
                .map(SequenceVersion)
                .collect(),
        )
    }
    /// Counts per step, across versions, in the current version's order.
    async fn stats(&self, ctx: &Context<'_>) -> Result<Vec<SequenceStepStats>> {
        let who = principal(ctx)?;
        Ok(
            sequences::stats(db(ctx), who.workspace_id, self.0.sequence.id)
                .await
                .gql()?
                .into_iter()
                .map(SequenceStepStats)
                .collect(),
        )
    }
    /// Enrollments, newest first.
    async fn enrollments(
        &self,
        ctx: &Context<'_>,
        status: Option<EnrollmentStatus>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<SequenceEnrollment>> {
        let who = principal(ctx)?;
        let filter = EnrollmentFilter {
            sequence_id: Some(self.0.sequence.id),
            contact_id: None,
            status: status.map(Into::into),
        };
        list_enrollments(ctx, who.workspace_id, &filter, first).await
    }
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.sequence.activated_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.sequence.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.sequence.updated_at
    }
}

/// One saved version of a sequence.
pub struct SequenceVersion(s::sequence_version::Model);

#[Object]
impl SequenceVersion {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn definition(&self) -> Json<serde_json::Value> {
        Json(self.0.definition.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// How many contacts left at a step for one reason.
#[derive(SimpleObject)]
pub struct ExitCount {
    pub reason: String,
    pub count: u64,
}

/// Counts of one step.
pub struct SequenceStepStats(StepStats);

#[Object]
impl SequenceStepStats {
    async fn step(&self) -> &str {
        &self.0.step
    }
    /// `wait`, `sendEmail`, `branch`, ...; empty for a step only older versions have.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Times contacts arrived at the step.
    async fn entered(&self) -> u64 {
        self.0.entered
    }
    /// Times contacts went on past it.
    async fn completed(&self) -> u64 {
        self.0.completed
    }
    /// Contacts at the step now.
    async fn current(&self) -> u64 {
        self.0.current
    }
    async fn emails_sent(&self) -> u64 {
        self.0.emails_sent
    }
    /// Sent emails opened at least once.
    async fn opens(&self) -> u64 {
        self.0.opened
    }
    /// Sent emails clicked at least once.
    async fn clicks(&self) -> u64 {
        self.0.clicked
    }
    /// Contacts who left the sequence here, by reason.
    async fn exits(&self) -> Vec<ExitCount> {
        self.0
            .exits
            .iter()
            .map(|(reason, count)| ExitCount {
                reason: reason.clone(),
                count: *count,
            })
            .collect()
    }
}

/// One contact's run through a sequence.
pub struct SequenceEnrollment(pub s::sequence_enrollment::Model);

#[Object]
impl SequenceEnrollment {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn sequence(&self, ctx: &Context<'_>) -> Result<Sequence> {
        let who = principal(ctx)?;
        Ok(Sequence(
            sequences::get(db(ctx), who.workspace_id, self.0.sequence_id)
                .await
                .gql()?,
        ))
    }
    async fn sequence_id(&self) -> ID {
        to_id(self.0.sequence_id)
    }
    /// The version it runs on.
    async fn version(&self, ctx: &Context<'_>) -> Result<i32> {
        use sea_orm::EntityTrait;
        let v = s::sequence_version::Entity::find_by_id(self.0.version_id)
            .one(db(ctx))
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        Ok(v.map(|v| v.version).unwrap_or_default())
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        let who = principal(ctx)?;
        Ok(records::get_with::<s::contact::Entity>(
            db(ctx),
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
    async fn status(&self) -> EnrollmentStatus {
        EnrollmentStatus::from_db(&self.0.status)
    }
    /// The step it is at (for a finished one, where it finished).
    async fn current_step(&self) -> &str {
        &self.0.step_key
    }
    /// Steps taken.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// When the current step runs (again).
    async fn next_run_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_run_at
    }
    /// What enrolled it: `manual`, `event:form_submitted`, `segment:3`, ...
    async fn trigger(&self) -> &str {
        &self.0.trigger
    }
    /// Why it ended.
    async fn exit_reason(&self) -> Option<&str> {
        self.0.exit_reason.as_deref()
    }
    async fn enrolled_at(&self) -> DateTime<Utc> {
        self.0.enrolled_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Every step it went through, in order.
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<SequenceStepEvent>> {
        let who = principal(ctx)?;
        Ok(
            sequences::history_of(db(ctx), who.workspace_id, &[self.0.id])
                .await
                .gql()?
                .into_iter()
                .map(SequenceStepEvent)
                .collect(),
        )
    }
    /// The email its steps sent (or skipped).
    async fn messages(&self, ctx: &Context<'_>) -> Result<Vec<SequenceMessage>> {
        let who = principal(ctx)?;
        Ok(
            sequences::messages_of(db(ctx), who.workspace_id, &[self.0.id])
                .await
                .gql()?
                .into_iter()
                .map(SequenceMessage)
                .collect(),
        )
    }
}

/// What happened at a step.
pub struct SequenceStepEvent(s::sequence_step_event::Model);

#[Object]
impl SequenceStepEvent {
    async fn step(&self) -> &str {
        &self.0.step_key
    }
    /// `entered`, `completed`, `deferred` (quiet hours, frequency cap, a deferring mail
    /// server), `exited`.
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// An email a sequence step sent.
pub struct SequenceMessage(s::sequence_message::Model);

#[Object]
impl SequenceMessage {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn step(&self) -> &str {
        &self.0.step_key
    }
    async fn state(&self) -> MessageState {
        MessageState::from_db(&self.0.state)
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.0.opened_at
    }
    async fn clicked_at(&self) -> Option<DateTime<Utc>> {
        self.0.clicked_at
    }
    async fn opens(&self) -> i32 {
        self.0.opens
    }
    async fn clicks(&self) -> i32 {
        self.0.clicks
    }
}

/// Enrollments matching a filter, newest first.
pub async fn list_enrollments(
    ctx: &Context<'_>,
    ws: i64,
    filter: &EnrollmentFilter,
    first: i32,
) -> Result<Vec<SequenceEnrollment>> {
    Ok(
        sequences::enrollments(db(ctx), ws, filter, first.clamp(1, 1000) as u64)
            .await
            .gql()?
            .into_iter()
            .map(SequenceEnrollment)
            .collect(),
    )
}
