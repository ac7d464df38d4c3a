//! `plugin_shadow_scores` table: a shadow version's current score of one contact, kept apart
//! from the plugin's shown scores.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_shadow_scores")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub plugin_id: i64,
    pub version_id: i64,
    pub contact_id: i64,
    /// 0–100.
    pub score: f64,
    /// `[{"feature", "contribution", "note"}]`, as the plugin ordered them.
    pub reasons: Json,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
