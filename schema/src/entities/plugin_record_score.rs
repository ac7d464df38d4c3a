//! `plugin_record_scores` table: a plugin's current score of one deal or company (the
//! records other than contacts that a plugin can score).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_record_scores")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub plugin_id: i64,
    pub version_id: i64,
    /// `deal` or `company`.
    pub subject: String,
    /// The deal's or company's id.
    pub record_id: i64,
    /// 0–100.
    pub score: f64,
    /// `[{"feature", "contribution", "note"}]`, as the plugin ordered them.
    pub reasons: Json,
    pub fuel_used: i64,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
