//! `deal_stage_history` table.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "deal_stage_history")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub deal_id: i64,
    /// None for the stage a deal was created in.
    pub from_stage_id: Option<i64>,
    pub to_stage_id: i64,
    pub moved_at: DateTimeUtc,
    /// The API key that made the move.
    pub moved_by_key_id: Option<i64>,
    pub moved_by_user_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
