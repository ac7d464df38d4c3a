//! `live_notices` table: on SQLite, the changes subscriptions follow, read past the last id
//! seen by every serving process; kept a few minutes.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "live_notices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// `deal`, `activity`, `score`, `campaign`.
    pub topic: String,
    /// What subscribers filter on: the pipeline, contact or campaign.
    pub scope_id: i64,
    /// The object that changed.
    pub object_id: i64,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
