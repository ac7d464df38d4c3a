//! `contacts` table.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contacts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub first_name: String,
    pub last_name: String,
    /// Primary email address, lower-cased; the natural key for upserts.
    pub email: Option<String>,
    /// Further addresses, a JSON array of strings.
    pub other_emails: Json,
    pub phone: Option<String>,
    /// Digits only (with a leading +), for duplicate detection.
    pub phone_normalized: Option<String>,
    pub company_id: Option<i64>,
    pub owner_id: Option<i64>,
    /// Lead, Qualified, Opportunity, Customer, Churned or Lost.
    pub lifecycle_stage: String,
    pub source: Option<String>,
    /// Tags, a JSON array of strings (mirrored in `contact_tags` for filtering).
    pub tags: Json,
    /// Custom attributes, a JSON object.
    pub attributes: Json,
    /// IANA time zone name.
    pub timezone: Option<String>,
    /// Set when this contact was merged into another; the row is then soft-deleted.
    pub merged_into_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
