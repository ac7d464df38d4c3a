//! `contact_merges` table.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contact_merges")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub survivor_id: i64,
    pub merged_id: i64,
    /// The merged contact as it was, so the merge can be audited.
    pub merged_snapshot: Json,
    /// How many rows of each kind moved to the survivor.
    pub moved: Json,
    pub merged_at: DateTimeUtc,
    pub merged_by_key_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
