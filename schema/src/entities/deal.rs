//! `deals` table.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "deals")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    pub contact_id: Option<i64>,
    pub company_id: Option<i64>,
    pub pipeline_id: i64,
    pub stage_id: i64,
    /// Amount in minor units of `currency` (cents for USD).
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub expected_close_date: Option<Date>,
    pub owner_id: Option<i64>,
    /// open, won or lost.
    pub status: String,
    pub lost_reason: Option<String>,
    pub competitor: Option<String>,
    pub closed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// The deal's id in another system (a CRM it came from), unique in the workspace;
    /// what a deal import upserts by.
    pub external_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
