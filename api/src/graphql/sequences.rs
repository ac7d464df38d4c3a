//! Drip sequences on the graph: definitions as JSON (create, update, import, export),
//! lifecycle (activate, pause, archive), enrollments with their current step and history,
//! per-step stats, and moving enrollments onto a newer version.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use rapport_engine::clock::Clock;
use rapport_engine::engagement::sequences::{self, EnrollmentFilter};
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::context::principal;
use crate::graphql::enums::EnrollmentStatus;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::{Sequence, SequenceEnrollment, list_enrollments};

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

fn clock<'a>(ctx: &Context<'a>) -> &'a Arc<dyn Clock> {
    ctx.data_unchecked::<Arc<dyn Clock>>()
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
