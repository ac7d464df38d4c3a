//! `score_history` table: every score ever given, appended on each rescoring.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "score_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub kind: String,
    pub subject_id: i64,
    pub model_version_id: i64,
    pub score: f64,
    pub grade: Option<String>,
    pub computed_at: DateTimeUtc,
    /// The score this one replaced (none for a subject's first).
    pub previous_score: Option<f64>,
    /// The grade this one replaced.
    pub previous_grade: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
