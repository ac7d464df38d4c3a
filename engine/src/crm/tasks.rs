//! Tasks: follow-ups assigned to team members.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{Patch, TaskStatus, Text};
use chrono::{DateTime, Utc};
use rapport_schema::{contact, deal, task, user};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};

/// Fields of a task as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct TaskInput {
    /// What to do.
    pub title: Option<String>,
    /// When it is due.
    pub due_at: Patch<DateTime<Utc>>,
    /// Progress; open by default.
    pub status: Option<TaskStatus>,
    /// Who does it.
    pub assignee_id: Patch<i64>,
    /// The contact it concerns.
    pub contact_id: Patch<i64>,
    /// The deal it concerns.
    pub deal_id: Patch<i64>,
}

async fn apply(
    db: &impl ConnectionTrait,
    ws: i64,
    am: &mut task::ActiveModel,
    input: TaskInput,
) -> Result<()> {
    if let Patch::Set(id) = input.contact_id {
        records::ensure_exists::<contact::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = input.deal_id {
        records::ensure_exists::<deal::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = input.assignee_id {
        records::ensure_exists::<user::Entity>(db, ws, id).await?;
    }
    if let Some(t) = input.title {
        am.title = Set(Text::parse("title", &t, 500)?.into_string());
    }
    input.due_at.apply(&mut am.due_at);
    if let Some(s) = input.status {
        am.status = Set(s.as_str().to_string());
        // Completion time follows the status, so "done in March" can be reported.
        am.completed_at = Set(if s == TaskStatus::Done {
            Some(clock::now())
        } else {
            None
        });
    }
    input.assignee_id.apply(&mut am.assignee_id);
    input.contact_id.apply(&mut am.contact_id);
    input.deal_id.apply(&mut am.deal_id);
    am.updated_at = Set(clock::now());
    Ok(())
}

/// Creates a task.
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: TaskInput,
) -> Result<task::Model> {
    if input.title.is_none() {
        return Err(EngineError::invalid("title", "is required"));
    }
    let now = clock::now();
    let mut am = task::ActiveModel {
        workspace_id: Set(who.workspace_id),
        status: Set(TaskStatus::Open.as_str().to_string()),
        created_at: Set(now),
        due_at: Set(None),
        assignee_id: Set(None),
        contact_id: Set(None),
        deal_id: Set(None),
        completed_at: Set(None),
        ..Default::default()
    };
    apply(db, who.workspace_id, &mut am, input).await?;
    Ok(am.insert(db).await?)
}

/// Changes the given fields of a task.
pub async fn update(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: TaskInput,
) -> Result<task::Model> {
    let mut am: task::ActiveModel = records::get::<task::Entity>(db, who.workspace_id, id)
        .await?
        .into();
    apply(db, who.workspace_id, &mut am, input).await?;
    Ok(am.update(db).await?)
}
