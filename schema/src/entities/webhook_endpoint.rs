//! `webhook_endpoints` table: where an app wants to hear about changes, and which ones.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// The http(s) URL deliveries are POSTed to.
    pub url: String,
    pub description: String,
    /// The event types it receives, as a JSON array of names (`contact.created`, ...).
    pub events: Json,
    /// The signing secret (`whsec_` and base64), shown once when created.
    pub secret: String,
    pub enabled: bool,
    /// Why it was disabled, when Rapport disabled it (410 Gone, failing for days).
    pub disabled_reason: Option<String>,
    /// When its current run of failed attempts began.
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
