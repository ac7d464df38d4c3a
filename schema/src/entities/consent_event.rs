//! `consent_events` table: the append-only history of a contact's consent.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "consent_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub contact_id: i64,
    /// `email`.
    pub channel: String,
    /// `marketing` or `transactional`.
    pub purpose: String,
    /// `granted`, `pending`, `denied` or `withdrawn`.
    pub status: String,
    pub lawful_basis: String,
    /// Where the consent was given (a form, an import, a call).
    pub source: Option<String>,
    pub proof_ip: Option<String>,
    pub proof_user_agent: Option<String>,
    pub proof_form: Option<String>,
    pub recorded_at: DateTimeUtc,
    pub recorded_by_key_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
