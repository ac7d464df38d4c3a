//! `campaigns` table: a marketing email to a segment, with its lifecycle.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    pub segment_id: i64,
    pub from_email: String,
    pub from_name: Option<String>,
    /// draft, scheduled, sending, paused, sent, cancelled.
    pub status: String,
    pub scheduled_at: Option<DateTimeUtc>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub rate_per_second: Option<i32>,
    /// Share of the audience that gets the A/B test first (0–1); `None` sends all at once.
    pub test_share: Option<f64>,
    pub test_wait_minutes: Option<i32>,
    /// open or click.
    pub winner_metric: Option<String>,
    pub winner_variant_id: Option<i64>,
    pub consecutive_failures: i32,
    /// Why it paused or stopped, when Rapport did it.
    pub status_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// The topic it is about; contacts who opted out of it are skipped.
    pub topic_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
