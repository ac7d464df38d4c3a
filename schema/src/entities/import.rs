//! `imports` table: a CSV import a person started over the API, worked as a job, with its
//! state and counts.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "imports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// `contacts`, `companies` or `deals`.
    pub kind: String,
    /// queued, running, done or failed.
    pub state: String,
    /// Checks every row and writes nothing.
    pub dry_run: bool,
    /// The uploaded file's name, as the client gave it.
    pub file_name: String,
    pub file_bytes: i64,
    /// The file's columns in order: `[{header, target}]`.
    pub columns: Json,
    /// Rows in the file, once a worker counted them.
    pub total: Option<i64>,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub failed: i64,
    /// Why the import as a whole failed.
    pub error: Option<String>,
    pub requested_by_key_id: Option<i64>,
    pub requested_by_user_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
