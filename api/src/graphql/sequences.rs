//! Drip sequences on the graph: definitions as JSON (create, update, import, export),
//! lifecycle (activate, pause, archive), enrollments with their current step and history,
//! per-step stats, and moving enrollments onto a newer version.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::clock::Clock;
use rapport_engine::engagement::sequences::{self, EnrollmentFilter, StepStats};
use rapport_engine::platform::records::{self, Deleted};
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::enums::{EnrollmentStatus, MessageState, SequenceStatus};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::{Contact, principal};

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

fn clock<'a>(ctx: &Context<'a>) -> &'a Arc<dyn Clock> {
    ctx.data_unchecked::<Arc<dyn Clock>>()
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

/// A contact an enroll call left out, and why.
#[derive(SimpleObject)]
pub struct SkippedEnrollment {
    pub contact_id: ID,
    pub reason: String,
}

/// What an enroll call did.
#[derive(SimpleObject)]
pub struct EnrollResult {
    pub enrollments: Vec<SequenceEnrollment>,
    pub skipped: Vec<SkippedEnrollment>,
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

async fn load(ctx: &Context<'_>, id: i64) -> Result<Sequence> {
    let who = principal(ctx)?;
    Ok(Sequence(
        sequences::get(db(ctx), who.workspace_id, id).await.gql()?,
    ))
}

/// Reading sequences.
#[derive(Default)]
pub struct SequenceQuery;

#[Object]
impl SequenceQuery {
    async fn sequence(&self, ctx: &Context<'_>, id: ID) -> Result<Sequence> {
        load(ctx, parse_id("id", &id)?).await
    }
    /// Every sequence, by name.
    async fn sequences(&self, ctx: &Context<'_>) -> Result<Vec<Sequence>> {
        let who = principal(ctx)?;
        Ok(sequences::list(db(ctx), who.workspace_id)
            .await
            .gql()?
            .into_iter()
            .map(Sequence)
            .collect())
    }
    /// Enrollments of a sequence, of a contact, or both, newest first.
    async fn sequence_enrollments(
        &self,
        ctx: &Context<'_>,
        sequence_id: Option<ID>,
        contact_id: Option<ID>,
        status: Option<EnrollmentStatus>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<SequenceEnrollment>> {
        let who = principal(ctx)?;
        let filter = EnrollmentFilter {
            sequence_id: sequence_id
                .map(|id| parse_id("sequenceId", &id))
                .transpose()?,
            contact_id: contact_id
                .map(|id| parse_id("contactId", &id))
                .transpose()?,
            status: status.map(Into::into),
        };
        list_enrollments(ctx, who.workspace_id, &filter, first).await
    }
    /// A version's definition as JSON text (the current version when omitted), to keep in
    /// version control and import elsewhere.
    async fn export_sequence(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: Option<i32>,
    ) -> Result<String> {
        let who = principal(ctx)?;
        let json = sequences::export(db(ctx), who.workspace_id, parse_id("id", &id)?, version)
            .await
            .gql()?;
        Ok(serde_json::to_string_pretty(&json).expect("JSON serialises"))
    }
}

/// Writing sequences.
#[derive(Default)]
pub struct SequenceMutation;

#[Object]
impl SequenceMutation {
    /// Saves a draft sequence. The definition is checked first: unknown, unreachable or
    /// missing steps, cycles without a wait, branches without an else, missing templates
    /// are refused with the step named.
    async fn create_sequence(
        &self,
        ctx: &Context<'_>,
        definition: Json<serde_json::Value>,
    ) -> Result<Sequence> {
        let who = principal(ctx)?;
        Ok(Sequence(
            sequences::create(db(ctx), who, clock(ctx).as_ref(), &definition.0)
                .await
                .gql()?,
        ))
    }
    /// Saves a new version; contacts already enrolled finish on theirs unless migrated.
    async fn update_sequence(
        &self,
        ctx: &Context<'_>,
        id: ID,
        definition: Json<serde_json::Value>,
    ) -> Result<Sequence> {
        let who = principal(ctx)?;
        Ok(Sequence(
            sequences::update(
                db(ctx),
                who,
                clock(ctx).as_ref(),
                parse_id("id", &id)?,
                &definition.0,
            )
            .await
            .gql()?,
        ))
    }
    /// Imports exported JSON: a new sequence, or a new version of the one of that name.
    async fn import_sequence(&self, ctx: &Context<'_>, json: String) -> Result<Sequence> {
        let who = principal(ctx)?;
        let value: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| invalid("json", format!("not JSON: {e}")))?;
        Ok(Sequence(
            sequences::import(db(ctx), who, clock(ctx).as_ref(), &value)
                .await
                .gql()?,
        ))
    }
    /// Starts a draft or resumes a paused sequence.
    async fn activate_sequence(&self, ctx: &Context<'_>, id: ID) -> Result<Sequence> {
        let who = principal(ctx)?;
        let id = parse_id("id", &id)?;
        sequences::activate(db(ctx), who, clock(ctx).as_ref(), id)
            .await
            .gql()?;
        load(ctx, id).await
    }
    /// Stops enrolling and advancing; enrolled contacts wait where they are.
    async fn pause_sequence(&self, ctx: &Context<'_>, id: ID) -> Result<Sequence> {
        let who = principal(ctx)?;
        let id = parse_id("id", &id)?;
        sequences::pause(db(ctx), who, clock(ctx).as_ref(), id)
            .await
            .gql()?;
        load(ctx, id).await
    }
    /// Retires a sequence for good; contacts still in it exit.
    async fn archive_sequence(&self, ctx: &Context<'_>, id: ID) -> Result<Sequence> {
        let who = principal(ctx)?;
        let id = parse_id("id", &id)?;
        sequences::archive(db(ctx), who, clock(ctx).as_ref(), id)
            .await
            .gql()?;
        load(ctx, id).await
    }
    /// Enrolls contacts by hand (at most 10,000 per call). Contacts already in it, or
    /// through it when re-entry is off, are skipped with the reason.
    async fn enroll_in_sequence(
        &self,
        ctx: &Context<'_>,
        sequence_id: ID,
        contact_ids: Vec<ID>,
    ) -> Result<EnrollResult> {
        let who = principal(ctx)?;
        let ids = contact_ids
            .iter()
            .map(|id| parse_id("contactIds", id))
            .collect::<Result<Vec<_>>>()?;
        let done = sequences::enroll(
            db(ctx),
            who,
            clock(ctx).as_ref(),
            parse_id("sequenceId", &sequence_id)?,
            &ids,
        )
        .await
        .gql()?;
        Ok(EnrollResult {
            enrollments: done
                .enrollments
                .into_iter()
                .map(SequenceEnrollment)
                .collect(),
            skipped: done
                .skipped
                .into_iter()
                .map(|(c, reason)| SkippedEnrollment {
                    contact_id: to_id(c),
                    reason,
                })
                .collect(),
        })
    }
    /// Moves active enrollments from older versions (or only `fromVersion`) onto the
    /// current one; `stepMap` (`{"old": "new"}`) places contacts at steps the current
    /// version no longer has. Returns how many moved.
    async fn migrate_sequence_enrollments(
        &self,
        ctx: &Context<'_>,
        sequence_id: ID,
        from_version: Option<i32>,
        step_map: Option<Json<HashMap<String, String>>>,
    ) -> Result<u64> {
        let who = principal(ctx)?;
        sequences::migrate(
            db(ctx),
            who,
            clock(ctx).as_ref(),
            parse_id("sequenceId", &sequence_id)?,
            from_version,
            &step_map.map(|m| m.0).unwrap_or_default(),
        )
        .await
        .gql()
    }
}
