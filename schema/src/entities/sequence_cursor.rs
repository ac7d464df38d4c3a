//! `sequence_cursors` table: per workspace and trigger source, the last row the trigger
//! scan looked at (and, under `plugin_hooks`, the last event plugins' hooks were given).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sequence_cursors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: i64,
    /// `events`, `deal_stage_changes`, `lifecycle_changes`, ... or `plugin_hooks`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    pub last_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
