//! `plugin_score_history` table: every score a plugin gave.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_score_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub plugin_id: i64,
    pub version_id: i64,
    pub contact_id: i64,
    pub score: f64,
    pub computed_at: DateTimeUtc,
    /// The score this one replaced (none for a contact's first from this plugin).
    pub previous_score: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
