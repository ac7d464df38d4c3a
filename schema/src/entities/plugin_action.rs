//! `plugin_actions` table: an action a plugin recommended for a contact, and the answer.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_actions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub plugin_id: i64,
    pub version_id: i64,
    pub contact_id: i64,
    /// `send-email`, `create-task`, `call`, `offer`, `enroll-sequence`, `custom`.
    pub kind: String,
    /// `[[key, value], ...]`.
    pub params: Json,
    pub priority: i32,
    pub rationale: String,
    /// `open`, `accepted`, `rejected`, or `superseded` by a newer run.
    pub status: String,
    pub computed_at: DateTimeUtc,
    pub responded_at: Option<DateTimeUtc>,
    /// The API key that answered.
    pub responded_by: Option<i64>,
    pub note: Option<String>,
    /// What accepting did (`{"taskId": ...}`).
    pub outcome: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
