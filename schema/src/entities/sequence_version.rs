//! `sequence_versions` table: one saved version of a sequence's definition (steps, triggers, exits).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sequence_versions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub sequence_id: i64,
    pub version: i32,
    /// The definition as clients import and export it.
    pub definition: Json,
    pub created_at: DateTimeUtc,
    /// The API key that saved it.
    pub created_by: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
