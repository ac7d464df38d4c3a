//! `webhook_attempts` table: every try of a delivery, for the endpoint's log.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub endpoint_id: i64,
    pub delivery_id: i64,
    pub attempted_at: DateTimeUtc,
    /// The HTTP status the endpoint answered (none: no answer).
    pub status: Option<i32>,
    pub latency_ms: i64,
    /// Why it failed, in words (network error, timeout, refused address, ...).
    pub error: Option<String>,
    /// The start of the answer's body.
    pub response_excerpt: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
