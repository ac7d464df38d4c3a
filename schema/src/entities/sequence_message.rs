//! `sequence_messages` table: an email a sequence step sent (or skipped), with its opens and clicks.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sequence_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub sequence_id: i64,
    pub enrollment_id: i64,
    pub position: i32,
    pub step_key: String,
    pub contact_id: i64,
    /// `queued`, `sending`, `sent`, `failed`, `skipped` or `bounced`.
    pub state: String,
    pub reason: Option<String>,
    pub claimed_at: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub opened_at: Option<DateTimeUtc>,
    pub clicked_at: Option<DateTimeUtc>,
    pub opens: i32,
    pub clicks: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
