//! `scores` table: the current score of one contact or deal by one model kind.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "scores")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub kind: String,
    /// A contact id or a deal id, depending on the kind.
    pub subject_id: i64,
    pub model_version_id: i64,
    /// 0–100.
    pub score: f64,
    pub grade: Option<String>,
    /// `[{"feature": ..., "weight": ...}]`, strongest first.
    pub reasons: Json,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
