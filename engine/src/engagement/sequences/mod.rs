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
mod enrollments;
mod messages;
pub mod runner;
mod stats;
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
use crate::engagement::tracking;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::links::{Action as LinkAction, Claim};
use crate::platform::records::{self, Deleted};
use crate::values::{EnrollmentStatus, Scope, SequenceStatus, WebhookEventType};
pub use definition::Definition;
pub use enrollments::*;
pub use messages::*;
pub use stats::*;

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

/// Checks what needs the database: templates, plugins and sequences the steps name exist.
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
    if let Some(topic) = &d.topic
        && crate::engagement::topics::by_key(db, ws, topic)
            .await?
            .is_none()
    {
        problems.push(format!("topic: there is no topic '{topic}'"));
    }
    for (step, name) in d.plugins() {
        let found = rapport_schema::plugin::Entity::find()
            .filter(rapport_schema::plugin::Column::WorkspaceId.eq(ws))
            .filter(rapport_schema::plugin::Column::Name.eq(name))
            .one(db)
            .await?;
        let Some(found) = found else {
            problems.push(format!("step '{step}': there is no plugin '{name}'"));
            continue;
        };
        let active = match found.active_version_id {
            Some(id) => {
                rapport_schema::plugin_version::Entity::find_by_id(id)
                    .one(db)
                    .await?
            }
            None => None,
        };
        let contact = crate::values::PluginSubject::Contact.as_str();
        match active {
            Some(v) if v.scores && v.subject == contact => {}
            Some(v) if v.scores => problems.push(format!(
                "step '{step}': plugin '{name}' scores {}s, not the enrolled contact",
                v.subject
            )),
            _ => problems.push(format!(
                "step '{step}': plugin '{name}' gives no score to branch on"
            )),
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
