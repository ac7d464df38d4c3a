//! `idempotency_keys` table: the first answer to a request sent with an
//! `Idempotency-Key`, replayed to its retries for a day.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// The client's key, unique per workspace.
    pub key: String,
    /// Hex SHA-256 of what was asked; a retry must ask the same.
    pub fingerprint: String,
    /// The answer as JSON text; `None` while the first request runs.
    pub response: Option<String>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
