//! `campaign_messages` table: one row per (campaign, contact), unique, with what happened
//! to that email.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "campaign_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub campaign_id: i64,
    pub contact_id: i64,
    /// `None` while held back for the winner of an A/B test.
    pub variant_id: Option<i64>,
    /// held, queued, sending, sent, skipped, failed, bounced, cancelled, unknown.
    pub state: String,
    pub reason: Option<String>,
    pub attempts: i32,
    pub queued_at: DateTimeUtc,
    pub claimed_at: Option<DateTimeUtc>,
    /// The job worker that claimed it (its name in the queue's worker table).
    pub claimed_by: Option<String>,
    pub sent_at: Option<DateTimeUtc>,
    pub failed_at: Option<DateTimeUtc>,
    pub bounced_at: Option<DateTimeUtc>,
    pub opened_at: Option<DateTimeUtc>,
    pub clicked_at: Option<DateTimeUtc>,
    pub unsubscribed_at: Option<DateTimeUtc>,
    pub opens: i32,
    pub clicks: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
