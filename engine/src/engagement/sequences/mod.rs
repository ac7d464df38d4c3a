//! Drip sequences: versioned graphs of steps that move each enrolled contact along —
//! waits, email, branches, contact updates, tasks, enrollment elsewhere — until an exit.
//!
//! A sequence's definition ([`definition::Definition`]) is saved as a new version every
//! time it changes; an enrollment stays on the version it started on unless
//! [`migrate`] moves it. Each enrollment is a state machine in `sequence_enrollments`:
//! the step it is at, its `position` (steps taken), and when it should run next. The
//! ticker ([`runner::claim_due`]) claims enrollments that are due and queues
//! `AdvanceEnrollments` jobs; the job ([`runner::advance`]) runs steps until one waits.
//! Every step's effect commits in the same transaction as the move past it, guarded by
//! the position, so a crash repeats nothing; email uses the campaigns' claim rule on a
//! row unique per (enrollment, position), so a crash never sends twice. Time comes from
//! an injected [`Clock`](crate::clock::Clock).
//!
//! Triggers ([`triggers`]) enroll contacts from events, deal stage changes, lifecycle
//! changes, segment membership and date attributes.

pub mod definition;
pub mod runner;
pub mod triggers;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rapport_schema::{
    contact, email_template, sequence, sequence_enrollment, sequence_message, sequence_step_event,
    sequence_version,
};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::links::{Action as LinkAction, Claim};
use crate::platform::records::{self, Deleted};
use crate::values::{EnrollmentStatus, Scope, SequenceStatus};
pub use definition::Definition;

/// Contacts one `enroll` call takes.
pub const ENROLL_LIMIT: usize = 10_000;

/// A sequence with the version new enrollments start on.
#[derive(Clone, Debug)]
pub struct Sequence {
    /// The row.
    pub sequence: sequence::Model,
    /// Its current version.
    pub version: sequence_version::Model,
    /// That version's definition.
    pub definition: Definition,
}

/// The status of a sequence row.
pub fn status(s: &sequence::Model) -> SequenceStatus {
    SequenceStatus::from_db(&s.status)
}

/// Checks what needs the database: templates and sequences the steps name exist.
async fn check_references(
    db: &impl ConnectionTrait,
    ws: i64,
    d: &Definition,
    own_id: Option<i64>,
) -> Result<()> {
    let mut problems = Vec::new();
    let names: Vec<String> = d.templates().iter().map(|(_, t)| t.to_string()).collect();
    let known: HashSet<String> = email_template::Entity::find()
        .select_only()
        .column(email_template::Column::Name)
        .filter(email_template::Column::WorkspaceId.eq(ws))
        .filter(email_template::Column::DeletedAt.is_null())
        .filter(email_template::Column::Name.is_in(names))
        .into_tuple::<String>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    for (step, template) in d.templates() {
        if !known.contains(template) {
            problems.push(format!(
                "step '{step}': there is no email template '{template}'"
            ));
        }
    }
    for (step, other) in d.enrolls_in() {
        let found = sequence::Entity::find()
            .filter(sequence::Column::WorkspaceId.eq(ws))
            .filter(sequence::Column::Name.eq(other))
            .one(db)
            .await?;
        match found {
            None => problems.push(format!("step '{step}': there is no sequence '{other}'")),
            Some(s) if Some(s.id) == own_id => problems.push(format!(
                "step '{step}': a sequence cannot enroll into itself"
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::invalid("definition", problems.join("; ")))
    }
}

async fn name_taken(
    db: &impl ConnectionTrait,
    ws: i64,
    name: &str,
    except: Option<i64>,
) -> Result<bool> {
    let mut q = sequence::Entity::find()
        .filter(sequence::Column::WorkspaceId.eq(ws))
        .filter(sequence::Column::Name.eq(name));
    if let Some(id) = except {
        q = q.filter(sequence::Column::Id.ne(id));
    }
    Ok(q.count(db).await? > 0)
}

async fn save_version(
    db: &impl ConnectionTrait,
    who: &Principal,
    sequence_id: i64,
    d: &Definition,
    now: DateTime<Utc>,
) -> Result<sequence_version::Model> {
    let last: Option<i32> = sequence_version::Entity::find()
        .select_only()
        .column_as(sequence_version::Column::Version.max(), "v")
        .filter(sequence_version::Column::SequenceId.eq(sequence_id))
        .into_tuple::<Option<i32>>()
        .one(db)
        .await?
        .flatten();
    Ok(sequence_version::ActiveModel {
        workspace_id: Set(who.workspace_id),
        sequence_id: Set(sequence_id),
        version: Set(last.unwrap_or(0) + 1),
        definition: Set(d.to_json()),
        created_at: Set(now),
        created_by: Set(who.key_id),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Creates a draft sequence from a definition (write scope).
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    json: &Value,
) -> Result<Sequence> {
    who.require(Scope::Write)?;
    let d = Definition::parse(json)?;
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    if name_taken(&tx, ws, &d.name, None).await? {
        return Err(EngineError::Conflict(format!(
            "a sequence named '{}' exists already",
            d.name
        )));
    }
    check_references(&tx, ws, &d, None).await?;
    let now = clock.now();
    let row = sequence::ActiveModel {
        workspace_id: Set(ws),
        name: Set(d.name.clone()),
        status: Set(SequenceStatus::Draft.as_str().into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let version = save_version(&tx, who, row.id, &d, now).await?;
    let mut am: sequence::ActiveModel = row.into();
    am.current_version_id = Set(Some(version.id));
    let row = am.update(&tx).await?;
    tx.commit().await?;
    Ok(Sequence {
        sequence: row,
        version,
        definition: d,
    })
}

/// Saves a changed definition as a new version, which new enrollments start on;
/// contacts already enrolled finish on theirs unless [`migrate`]d (write scope).
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    id: i64,
    json: &Value,
) -> Result<Sequence> {
    who.require(Scope::Write)?;
    let d = Definition::parse(json)?;
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let row = records::get::<sequence::Entity>(&tx, ws, id).await?;
    if status(&row) == SequenceStatus::Archived {
        return Err(EngineError::Conflict(format!(
            "sequence {id} is archived and cannot change"
        )));
    }
    if name_taken(&tx, ws, &d.name, Some(id)).await? {
        return Err(EngineError::Conflict(format!(
            "a sequence named '{}' exists already",
            d.name
        )));
    }
    check_references(&tx, ws, &d, Some(id)).await?;
    let now = clock.now();
    let version = save_version(&tx, who, id, &d, now).await?;
    let mut am: sequence::ActiveModel = row.into();
    am.name = Set(d.name.clone());
    am.current_version_id = Set(Some(version.id));
    am.updated_at = Set(now);
    let row = am.update(&tx).await?;
    tx.commit().await?;
    Ok(Sequence {
        sequence: row,
        version,
        definition: d,
    })
}

/// Imports a definition: a new sequence, or a new version of the sequence of that name.
pub async fn import(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    json: &Value,
) -> Result<Sequence> {
    let name = json
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| EngineError::invalid("definition", "a definition needs a name"))?;
    let existing = sequence::Entity::find()
        .filter(sequence::Column::WorkspaceId.eq(who.workspace_id))
        .filter(sequence::Column::Name.eq(name))
        .one(db)
        .await?;
    match existing {
        Some(s) => update(db, who, clock, s.id, json).await,
        None => create(db, who, clock, json).await,
    }
}

/// A sequence of the workspace with its current version.
pub async fn get(db: &impl ConnectionTrait, ws: i64, id: i64) -> Result<Sequence> {
    let row = records::get::<sequence::Entity>(db, ws, id).await?;
    let version_id = row
        .current_version_id
        .ok_or_else(|| EngineError::not_found("SequenceVersion", id))?;
    let version = sequence_version::Entity::find_by_id(version_id)
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("SequenceVersion", version_id))?;
    let definition = stored_definition(&version)?;
    Ok(Sequence {
        sequence: row,
        version,
        definition,
    })
}

/// The definition a version holds (checked when it was saved).
pub fn stored_definition(v: &sequence_version::Model) -> Result<Definition> {
    serde_json::from_value(v.definition.clone()).map_err(|e| {
        tracing::error!(version = v.id, error = %e, "unreadable sequence definition");
        EngineError::Conflict(format!(
            "version {} of the sequence is unreadable",
            v.version
        ))
    })
}

/// Every version of a sequence, oldest first.
pub async fn versions(
    db: &impl ConnectionTrait,
    ws: i64,
    id: i64,
) -> Result<Vec<sequence_version::Model>> {
    records::ensure_exists::<sequence::Entity>(db, ws, id).await?;
    Ok(sequence_version::Entity::find()
        .filter(sequence_version::Column::SequenceId.eq(id))
        .order_by_asc(sequence_version::Column::Version)
        .all(db)
        .await?)
}

/// The definition of a version (the current one when `None`), for version control.
pub async fn export(
    db: &impl ConnectionTrait,
    ws: i64,
    id: i64,
    version: Option<i32>,
) -> Result<Value> {
    let all = versions(db, ws, id).await?;
    let chosen = match version {
        Some(v) => all.into_iter().find(|x| x.version == v),
        None => {
            let current = get(db, ws, id).await?.version.id;
            all.into_iter().find(|x| x.id == current)
        }
    }
    .ok_or_else(|| EngineError::not_found("SequenceVersion", version.unwrap_or_default()))?;
    Ok(chosen.definition)
}

/// Every sequence of the workspace with its current version, by name, in two statements.
pub async fn list(db: &impl ConnectionTrait, ws: i64) -> Result<Vec<Sequence>> {
    let rows = sequence::Entity::find()
        .filter(sequence::Column::WorkspaceId.eq(ws))
        .order_by_asc(sequence::Column::Name)
        .all(db)
        .await?;
    let mut versions: HashMap<i64, sequence_version::Model> = sequence_version::Entity::find()
        .filter(
            sequence_version::Column::Id.is_in(rows.iter().filter_map(|s| s.current_version_id)),
        )
        .all(db)
        .await?
        .into_iter()
        .map(|v| (v.id, v))
        .collect();
    rows.into_iter()
        .filter_map(|s| {
            let version = versions.remove(&s.current_version_id?)?;
            Some(stored_definition(&version).map(|definition| Sequence {
                sequence: s,
                version,
                definition,
            }))
        })
        .collect()
}

async fn set_status(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    id: i64,
    to: SequenceStatus,
) -> Result<sequence::Model> {
    who.require(Scope::Write)?;
    let row = records::get::<sequence::Entity>(db, who.workspace_id, id).await?;
    let from = status(&row);
    let allowed = match to {
        SequenceStatus::Active => matches!(from, SequenceStatus::Draft | SequenceStatus::Paused),
        SequenceStatus::Paused => from == SequenceStatus::Active,
        SequenceStatus::Archived => from != SequenceStatus::Archived,
        SequenceStatus::Draft => false,
    };
    if !allowed {
        return Err(EngineError::Conflict(format!(
            "sequence {id} is {from} and cannot become {to}"
        )));
    }
    let now = clock.now();
    let mut am: sequence::ActiveModel = row.into();
    am.status = Set(to.as_str().into());
    am.updated_at = Set(now);
    if to == SequenceStatus::Active {
        am.activated_at = Set(Some(now));
    }
    let row = am.update(db).await?;
    if to == SequenceStatus::Active {
        // Trigger sources are read from here on, not from their beginning.
        triggers::start_cursors(db, who.workspace_id).await?;
    }
    if to == SequenceStatus::Archived {
        runner::exit_all(db, id, "sequence archived", now).await?;
    }
    Ok(row)
}

/// Starts (or resumes) a sequence: its triggers enroll and its enrollments advance.
pub async fn activate(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    id: i64,
) -> Result<sequence::Model> {
    let current = get(db, who.workspace_id, id).await?;
    // Templates may have been deleted since the version was saved.
    check_references(db, who.workspace_id, &current.definition, Some(id)).await?;
    set_status(db, who, clock, id, SequenceStatus::Active).await
}

/// Pauses a sequence: nothing enrolls, enrolled contacts wait where they are.
pub async fn pause(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    id: i64,
) -> Result<sequence::Model> {
    set_status(db, who, clock, id, SequenceStatus::Paused).await
}

/// Archives a sequence for good; contacts still in it exit.
pub async fn archive(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    id: i64,
) -> Result<sequence::Model> {
    set_status(db, who, clock, id, SequenceStatus::Archived).await
}

/// What an enroll call did.
#[derive(Clone, Debug, Default)]
pub struct Enrolled {
    /// New enrollments.
    pub enrollments: Vec<sequence_enrollment::Model>,
    /// Contacts not enrolled, with why.
    pub skipped: Vec<(i64, String)>,
}

/// Enrolls contacts by hand (write scope); ids from another workspace are not found.
pub async fn enroll(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    sequence_id: i64,
    contact_ids: &[i64],
) -> Result<Enrolled> {
    who.require(Scope::Write)?;
    if contact_ids.len() > ENROLL_LIMIT {
        return Err(EngineError::invalid(
            "contactIds",
            format!("at most {ENROLL_LIMIT} contacts per call"),
        ));
    }
    let ws = who.workspace_id;
    let unique: Vec<i64> = {
        let mut seen = HashSet::new();
        contact_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect()
    };
    let found: HashSet<i64> = records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::Id.is_in(unique.clone()))
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    if let Some(missing) = unique.iter().find(|id| !found.contains(id)) {
        return Err(EngineError::not_found("Contact", missing));
    }
    let s = get(db, ws, sequence_id).await?;
    if status(&s.sequence) != SequenceStatus::Active {
        return Err(EngineError::Conflict(format!(
            "sequence {sequence_id} is {}; activate it to enroll contacts",
            status(&s.sequence)
        )));
    }
    let tx = crate::platform::db::write(db).await?;
    let out = enroll_in(&tx, &s, &unique, "manual", clock.now()).await?;
    tx.commit().await?;
    Ok(out)
}

#[derive(FromQueryResult)]
struct PastEnrollment {
    contact_id: i64,
    status: String,
}

/// Enrolls contacts in an active sequence (the caller checked it is active and the
/// contacts are the workspace's), honouring re-entry and the enrollment limit.
pub(crate) async fn enroll_in(
    db: &impl ConnectionTrait,
    s: &Sequence,
    contact_ids: &[i64],
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<Enrolled> {
    let d = &s.definition;
    let mut past: HashMap<i64, (usize, bool)> = HashMap::new();
    for chunk in contact_ids.chunks(5000) {
        let rows = PastEnrollment::find_by_statement(
            sequence_enrollment::Entity::find()
                .select_only()
                .column(sequence_enrollment::Column::ContactId)
                .column(sequence_enrollment::Column::Status)
                .filter(sequence_enrollment::Column::SequenceId.eq(s.sequence.id))
                .filter(sequence_enrollment::Column::ContactId.is_in(chunk.iter().copied()))
                .build(db.get_database_backend()),
        )
        .all(db)
        .await?;
        for r in rows {
            let e = past.entry(r.contact_id).or_default();
            e.0 += 1;
            e.1 |= r.status == EnrollmentStatus::Active.as_str();
        }
    }
    let mut out = Enrolled::default();
    let mut fresh = Vec::new();
    let mut over_limit = Vec::new();
    for &c in contact_ids {
        let (count, active) = past.get(&c).copied().unwrap_or_default();
        if active {
            out.skipped.push((c, "already enrolled".into()));
        } else if count > 0 && !d.allow_reentry {
            out.skipped
                .push((c, "was enrolled before and re-entry is off".into()));
        } else if d.max_enrollments.is_some_and(|m| count >= m as usize) {
            out.skipped.push((c, "enrolled too many times".into()));
            over_limit.push(c);
        } else {
            fresh.push(c);
        }
    }
    let start = &d.start;
    let row = |c: i64, st: EnrollmentStatus, reason: Option<&str>| {
        let active = st == EnrollmentStatus::Active;
        sequence_enrollment::ActiveModel {
            workspace_id: Set(s.sequence.workspace_id),
            sequence_id: Set(s.sequence.id),
            version_id: Set(s.version.id),
            contact_id: Set(c),
            status: Set(st.as_str().into()),
            step_key: Set(start.clone()),
            position: Set(0),
            step_entered_at: Set(now),
            // A start that waits is worked out by the first run, in the contact's zone.
            next_run_at: Set(active.then_some(now)),
            claimed_at: Set(None),
            trigger: Set(trigger.into()),
            exit_reason: Set(reason.map(String::from)),
            enrolled_at: Set(now),
            finished_at: Set((!active).then_some(now)),
            updated_at: Set(now),
            ..Default::default()
        }
    };
    for chunk in fresh.chunks(1000) {
        sequence_enrollment::Entity::insert_many(
            chunk
                .iter()
                .map(|&c| row(c, EnrollmentStatus::Active, None)),
        )
        .exec_without_returning(db)
        .await?;
    }
    for chunk in over_limit.chunks(1000) {
        sequence_enrollment::Entity::insert_many(
            chunk
                .iter()
                .map(|&c| row(c, EnrollmentStatus::Exited, Some("enrolled too many times"))),
        )
        .exec_without_returning(db)
        .await?;
    }
    let mut created = Vec::new();
    for chunk in fresh.chunks(5000) {
        created.extend(
            sequence_enrollment::Entity::find()
                .filter(sequence_enrollment::Column::SequenceId.eq(s.sequence.id))
                .filter(sequence_enrollment::Column::ContactId.is_in(chunk.iter().copied()))
                .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
                .filter(sequence_enrollment::Column::EnrolledAt.eq(now))
                .all(db)
                .await?,
        );
    }
    for chunk in created.chunks(1000) {
        sequence_step_event::Entity::insert_many(
            chunk
                .iter()
                .map(|e| step_event(e, &e.step_key, "entered", Some(trigger.to_string()), now)),
        )
        .exec_without_returning(db)
        .await?;
    }
    out.enrollments = created;
    Ok(out)
}

/// An update that ends the active enrollments the caller's filters pick, with a status
/// and reason, releasing their claims.
pub(crate) fn ending(
    status: EnrollmentStatus,
    reason: &str,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<sequence_enrollment::Entity> {
    sequence_enrollment::Entity::update_many()
        .col_expr(
            sequence_enrollment::Column::Status,
            Expr::value(status.as_str()),
        )
        .col_expr(sequence_enrollment::Column::ExitReason, Expr::value(reason))
        .col_expr(sequence_enrollment::Column::FinishedAt, Expr::value(now))
        .col_expr(
            sequence_enrollment::Column::NextRunAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            sequence_enrollment::Column::ClaimedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(sequence_enrollment::Column::UpdatedAt, Expr::value(now))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
}

fn step_event(
    e: &sequence_enrollment::Model,
    step: &str,
    outcome: &str,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> sequence_step_event::ActiveModel {
    sequence_step_event::ActiveModel {
        workspace_id: Set(e.workspace_id),
        sequence_id: Set(e.sequence_id),
        version_id: Set(e.version_id),
        enrollment_id: Set(e.id),
        step_key: Set(step.into()),
        outcome: Set(outcome.into()),
        detail: Set(detail),
        at: Set(at),
        ..Default::default()
    }
}

/// Moves active enrollments of a sequence from older versions onto its current one (or
/// only those on `from_version`). A contact keeps its step when the new version has it;
/// `step_map` says where the others go. Nothing moves when some step has nowhere to go.
pub async fn migrate(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    sequence_id: i64,
    from_version: Option<i32>,
    step_map: &HashMap<String, String>,
) -> Result<u64> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let target = get(db, ws, sequence_id).await?;
    let all = versions(db, ws, sequence_id).await?;
    let sources: Vec<i64> = all
        .iter()
        .filter(|v| v.id != target.version.id)
        .filter(|v| from_version.is_none_or(|f| f == v.version))
        .map(|v| v.id)
        .collect();
    if let Some(f) = from_version
        && sources.is_empty()
    {
        return Err(EngineError::invalid(
            "fromVersion",
            format!("version {f} is not an older version of this sequence"),
        ));
    }
    for (from, to) in step_map {
        if target.definition.step(to).is_none() {
            return Err(EngineError::invalid(
                "stepMap",
                format!("'{from}' maps to '{to}', which the current version does not have"),
            ));
        }
    }
    let tx = crate::platform::db::write(db).await?;
    let steps: Vec<String> = sequence_enrollment::Entity::find()
        .select_only()
        .column(sequence_enrollment::Column::StepKey)
        .distinct()
        .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
        .filter(sequence_enrollment::Column::VersionId.is_in(sources.clone()))
        .into_tuple()
        .all(&tx)
        .await?;
    let mut moved = 0;
    for step in steps {
        let to = match step_map.get(&step) {
            Some(t) => t.clone(),
            None if target.definition.step(&step).is_some() => step.clone(),
            None => {
                return Err(EngineError::invalid(
                    "stepMap",
                    format!(
                        "contacts are at step '{step}', which version {} does not have; map it to one of its steps",
                        target.version.version
                    ),
                ));
            }
        };
        moved += sequence_enrollment::Entity::update_many()
            .col_expr(
                sequence_enrollment::Column::VersionId,
                Expr::value(target.version.id),
            )
            .col_expr(sequence_enrollment::Column::StepKey, Expr::value(to))
            // Due now, so the next run works out the step's timing on the new version.
            .col_expr(
                sequence_enrollment::Column::NextRunAt,
                Expr::value(clock.now()),
            )
            .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
            .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
            .filter(sequence_enrollment::Column::VersionId.is_in(sources.clone()))
            .filter(sequence_enrollment::Column::StepKey.eq(step))
            .exec(&tx)
            .await?
            .rows_affected;
    }
    tx.commit().await?;
    Ok(moved)
}

/// Which enrollments to list.
#[derive(Clone, Debug, Default)]
pub struct EnrollmentFilter {
    /// Of this sequence.
    pub sequence_id: Option<i64>,
    /// Of this contact.
    pub contact_id: Option<i64>,
    /// In this state.
    pub status: Option<EnrollmentStatus>,
}

/// Enrollments of the workspace, newest first, at most `limit`.
pub async fn enrollments(
    db: &impl ConnectionTrait,
    ws: i64,
    filter: &EnrollmentFilter,
    limit: u64,
) -> Result<Vec<sequence_enrollment::Model>> {
    let mut q =
        sequence_enrollment::Entity::find().filter(sequence_enrollment::Column::WorkspaceId.eq(ws));
    if let Some(s) = filter.sequence_id {
        q = q.filter(sequence_enrollment::Column::SequenceId.eq(s));
    }
    if let Some(c) = filter.contact_id {
        q = q.filter(sequence_enrollment::Column::ContactId.eq(c));
    }
    if let Some(st) = filter.status {
        q = q.filter(sequence_enrollment::Column::Status.eq(st.as_str()));
    }
    Ok(q.order_by_desc(sequence_enrollment::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// What happened at each step of enrollments, in order.
pub async fn history_of(
    db: &impl ConnectionTrait,
    ws: i64,
    enrollment_ids: &[i64],
) -> Result<Vec<sequence_step_event::Model>> {
    Ok(sequence_step_event::Entity::find()
        .filter(sequence_step_event::Column::WorkspaceId.eq(ws))
        .filter(sequence_step_event::Column::EnrollmentId.is_in(enrollment_ids.iter().copied()))
        .order_by_asc(sequence_step_event::Column::Id)
        .all(db)
        .await?)
}

/// Counts of one step, over every version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepStats {
    /// The step.
    pub step: String,
    /// Its kind in the current version (empty when only older versions have it).
    pub kind: String,
    /// Times contacts arrived at it.
    pub entered: u64,
    /// Times contacts went on past it.
    pub completed: u64,
    /// Contacts there now.
    pub current: u64,
    /// Emails it sent.
    pub emails_sent: u64,
    /// Of those, opened.
    pub opened: u64,
    /// Of those, clicked.
    pub clicked: u64,
    /// Contacts who left here, by reason.
    pub exits: Vec<(String, u64)>,
}

#[derive(FromQueryResult)]
struct Counted {
    step_key: String,
    label: Option<String>,
    n: i64,
}

/// Per-step counts of a sequence, in the current version's step order (steps only older
/// versions have come last).
pub async fn stats(db: &impl ConnectionTrait, ws: i64, id: i64) -> Result<Vec<StepStats>> {
    let s = get(db, ws, id).await?;
    let backend = db.get_database_backend();
    let counted = |q: sea_orm::Select<sequence_step_event::Entity>| q.build(backend);
    let outcomes = Counted::find_by_statement(counted(
        sequence_step_event::Entity::find()
            .select_only()
            .column(sequence_step_event::Column::StepKey)
            .column_as(sequence_step_event::Column::Outcome, "label")
            .column_as(sequence_step_event::Column::Id.count(), "n")
            .filter(sequence_step_event::Column::SequenceId.eq(id))
            .filter(sequence_step_event::Column::Outcome.is_in(["entered", "completed"]))
            .group_by(sequence_step_event::Column::StepKey)
            .group_by(sequence_step_event::Column::Outcome),
    ))
    .all(db)
    .await?;
    let enrollment_counts = |q: sea_orm::Select<sequence_enrollment::Entity>| q.build(backend);
    let exits = Counted::find_by_statement(enrollment_counts(
        sequence_enrollment::Entity::find()
            .select_only()
            .column(sequence_enrollment::Column::StepKey)
            .column_as(sequence_enrollment::Column::ExitReason, "label")
            .column_as(sequence_enrollment::Column::Id.count(), "n")
            .filter(sequence_enrollment::Column::SequenceId.eq(id))
            .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Exited.as_str()))
            .group_by(sequence_enrollment::Column::StepKey)
            .group_by(sequence_enrollment::Column::ExitReason),
    ))
    .all(db)
    .await?;
    let current = Counted::find_by_statement(enrollment_counts(
        sequence_enrollment::Entity::find()
            .select_only()
            .column(sequence_enrollment::Column::StepKey)
            .column_as(Expr::cust("NULL"), "label")
            .column_as(sequence_enrollment::Column::Id.count(), "n")
            .filter(sequence_enrollment::Column::SequenceId.eq(id))
            .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
            .group_by(sequence_enrollment::Column::StepKey),
    ))
    .all(db)
    .await?;
    #[derive(FromQueryResult)]
    struct Mail {
        step_key: String,
        sent: i64,
        opened: i64,
        clicked: i64,
    }
    let mail = Mail::find_by_statement(
        sequence_message::Entity::find()
            .select_only()
            .column(sequence_message::Column::StepKey)
            .column_as(
                Expr::cust("SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END)"),
                "sent",
            )
            .column_as(
                Expr::cust("SUM(CASE WHEN opened_at IS NOT NULL THEN 1 ELSE 0 END)"),
                "opened",
            )
            .column_as(
                Expr::cust("SUM(CASE WHEN clicked_at IS NOT NULL THEN 1 ELSE 0 END)"),
                "clicked",
            )
            .filter(sequence_message::Column::SequenceId.eq(id))
            .group_by(sequence_message::Column::StepKey)
            .build(backend),
    )
    .all(db)
    .await?;
    let mut by_step: Vec<StepStats> = s
        .definition
        .steps
        .iter()
        .map(|st| StepStats {
            step: st.id.clone(),
            kind: st.action.kind().into(),
            ..Default::default()
        })
        .collect();
    fn slot(by_step: &mut Vec<StepStats>, step: &str) -> usize {
        match by_step.iter().position(|x| x.step == step) {
            Some(i) => i,
            None => {
                by_step.push(StepStats {
                    step: step.into(),
                    ..Default::default()
                });
                by_step.len() - 1
            }
        }
    }
    for c in outcomes {
        let i = slot(&mut by_step, &c.step_key);
        match c.label.as_deref() {
            Some("entered") => by_step[i].entered = c.n as u64,
            _ => by_step[i].completed = c.n as u64,
        }
    }
    for c in exits {
        let i = slot(&mut by_step, &c.step_key);
        by_step[i]
            .exits
            .push((c.label.unwrap_or_default(), c.n as u64));
    }
    for c in current {
        let i = slot(&mut by_step, &c.step_key);
        by_step[i].current = c.n as u64;
    }
    for m in mail {
        let i = slot(&mut by_step, &m.step_key);
        by_step[i].emails_sent = m.sent as u64;
        by_step[i].opened = m.opened as u64;
        by_step[i].clicked = m.clicked as u64;
    }
    for st in &mut by_step {
        st.exits.sort();
    }
    Ok(by_step)
}

/// The email of enrollments, oldest first.
pub async fn messages_of(
    db: &impl ConnectionTrait,
    ws: i64,
    enrollment_ids: &[i64],
) -> Result<Vec<sequence_message::Model>> {
    Ok(sequence_message::Entity::find()
        .filter(sequence_message::Column::WorkspaceId.eq(ws))
        .filter(sequence_message::Column::EnrollmentId.is_in(enrollment_ids.iter().copied()))
        .order_by_asc(sequence_message::Column::Id)
        .all(db)
        .await?)
}

/// After a merge: the merged contact's lifecycle history and sequence email belong to
/// the survivor; its enrollments end (the survivor has its own).
pub(crate) async fn merge_contacts(db: &impl ConnectionTrait, from: i64, to: i64) -> Result<()> {
    rapport_schema::lifecycle_change::Entity::update_many()
        .col_expr(
            rapport_schema::lifecycle_change::Column::ContactId,
            Expr::value(to),
        )
        .filter(rapport_schema::lifecycle_change::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    sequence_message::Entity::update_many()
        .col_expr(sequence_message::Column::ContactId, Expr::value(to))
        .filter(sequence_message::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    let now = crate::clock::now();
    ending(
        EnrollmentStatus::Exited,
        &format!("merged into contact {to}"),
        now,
    )
    .filter(sequence_enrollment::Column::ContactId.eq(from))
    .exec(db)
    .await?;
    Ok(())
}

/// Right to erasure: the contacts' enrollments, their history and email, and their
/// lifecycle history go.
pub(crate) async fn erase_contacts(db: &impl ConnectionTrait, people: &[i64]) -> Result<()> {
    let ids = people.iter().copied();
    rapport_schema::lifecycle_change::Entity::delete_many()
        .filter(rapport_schema::lifecycle_change::Column::ContactId.is_in(ids.clone()))
        .exec(db)
        .await?;
    let enrollments: Vec<i64> = sequence_enrollment::Entity::find()
        .select_only()
        .column(sequence_enrollment::Column::Id)
        .filter(sequence_enrollment::Column::ContactId.is_in(ids.clone()))
        .into_tuple()
        .all(db)
        .await?;
    sequence_step_event::Entity::delete_many()
        .filter(sequence_step_event::Column::EnrollmentId.is_in(enrollments.clone()))
        .exec(db)
        .await?;
    sequence_message::Entity::delete_many()
        .filter(sequence_message::Column::ContactId.is_in(ids))
        .exec(db)
        .await?;
    sequence_enrollment::Entity::delete_many()
        .filter(sequence_enrollment::Column::Id.is_in(enrollments))
        .exec(db)
        .await?;
    Ok(())
}

/// Records an open or click of a sequence email from a verified tracking link: on the
/// message (what branches read) and as an event. Returns where a click goes on to.
pub async fn track(db: &DatabaseConnection, claim: &Claim, id: i64) -> Result<Option<String>> {
    let m = sequence_message::Entity::find_by_id(id)
        .filter(sequence_message::Column::WorkspaceId.eq(claim.ws))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("SequenceMessage", id))?;
    let now = crate::clock::now();
    let (event_type, url) = match claim.action {
        LinkAction::Open => ("email_opened", None),
        LinkAction::Click => (
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
    let mut update = sequence_message::Entity::update_many()
        .filter(sequence_message::Column::Id.eq(id))
        // A click proves an open even when images were blocked.
        .col_expr(
            sequence_message::Column::OpenedAt,
            Expr::col(sequence_message::Column::OpenedAt).if_null(now),
        );
    update = if url.is_some() {
        update
            .col_expr(
                sequence_message::Column::Clicks,
                Expr::col(sequence_message::Column::Clicks).add(1),
            )
            .col_expr(
                sequence_message::Column::ClickedAt,
                Expr::col(sequence_message::Column::ClickedAt).if_null(now),
            )
    } else {
        update.col_expr(
            sequence_message::Column::Opens,
            Expr::col(sequence_message::Column::Opens).add(1),
        )
    };
    let tx = crate::platform::db::write(db).await?;
    update.exec(&tx).await?;
    rapport_schema::event::ActiveModel {
        workspace_id: Set(m.workspace_id),
        contact_id: Set(m.contact_id),
        event_type: Set(event_type.into()),
        properties: Set(json!({
            "sequence_id": m.sequence_id,
            "sequence_message_id": m.id,
            "step": m.step_key,
            "url": url,
        })),
        occurred_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    Ok(url)
}
