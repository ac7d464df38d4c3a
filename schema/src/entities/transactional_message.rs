//! `transactional_messages` table: one email to one contact from a template, asked for
//! by an app (`sendEmail`), idempotent by its key.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "transactional_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub contact_id: i64,
    pub template_id: i64,
    /// The client's key: the same key never sends twice.
    pub idempotency_key: String,
    /// `transactional` or `marketing`: whose consent rules apply.
    pub purpose: String,
    pub from_email: String,
    pub from_name: Option<String>,
    /// `queued`, `sending`, `sent`, `skipped`, `failed`, `bounced`, `unknown`.
    pub state: String,
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
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
