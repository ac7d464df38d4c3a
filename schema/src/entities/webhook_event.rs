//! `webhook_events` table: the outbox — one row per change worth telling, written in the
//! transaction of the change.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// `contact.created`, `deal.won`, ...
    pub event_type: String,
    /// What changed, as `Typename:id`; deliveries keep order per endpoint and subject.
    pub subject: String,
    /// The body sent, without its envelope's id and time.
    pub payload: Json,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
