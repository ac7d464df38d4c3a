//! `model_trainings` table: a request to train a model, run as a job, with its progress.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "model_trainings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// The model kind (`lead_score`, ...).
    pub kind: String,
    /// queued, running, done or failed.
    pub state: String,
    /// What it is doing now, in words.
    pub stage: String,
    /// 0 to 1.
    #[sea_orm(column_type = "Double")]
    pub progress: f64,
    /// The options it was asked with.
    pub options: Json,
    /// The version it produced.
    pub version_id: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    pub requested_by_key_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
