//! `custom_fields` table: what one contact attribute holds in a workspace.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "custom_fields")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// The attribute's name.
    pub key: String,
    pub label: String,
    /// `text`, `number`, `date`, `boolean`, `enum` or `multi_select`.
    pub kind: String,
    /// The options of an enum or multi-select field, as a JSON list.
    pub options: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
