//! `sequence_enrollments` table: one contact going through one version of a sequence: a persisted state machine.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sequence_enrollments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub sequence_id: i64,
    pub version_id: i64,
    pub contact_id: i64,
    /// `active`, `completed` or `exited`.
    pub status: String,
    /// The step the contact is at.
    pub step_key: String,
    /// Steps taken so far; each step runs at one position, which makes its effects
    /// happen once.
    pub position: i32,
    pub step_entered_at: DateTimeUtc,
    /// When the current step should run (again); `None` once finished.
    pub next_run_at: Option<DateTimeUtc>,
    /// Set while a worker holds it.
    pub claimed_at: Option<DateTimeUtc>,
    /// What enrolled it (`manual`, `event:form_submitted`, ...).
    pub trigger: String,
    pub exit_reason: Option<String>,
    pub enrolled_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
