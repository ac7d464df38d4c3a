//! `activities` table.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "activities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// email, call, meeting, note, chat or social.
    pub kind: String,
    /// inbound or outbound.
    pub direction: Option<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub contact_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub author_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
