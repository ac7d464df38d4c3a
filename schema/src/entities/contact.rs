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
    /// Hex SHA-256 of `email`, set whenever the email is saved: the key the suppression
    /// list is matched on, so filters can check it in SQL.
    pub email_hash: Option<String>,
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

/// The key an address is suppressed under and matched by: hex SHA-256 of the normalised
/// (trimmed, lowercased) address.
pub fn email_hash(normalised: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(normalised.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {
    /// Keeps `email_hash` in step with `email` on every save of the row.
    async fn before_save<C>(mut self, _db: &C, _insert: bool) -> Result<Self, DbErr>
    where
        C: ConnectionTrait,
    {
        if let sea_orm::ActiveValue::Set(email) = &self.email {
            self.email_hash = sea_orm::ActiveValue::Set(email.as_deref().map(email_hash));
        }
        Ok(self)
    }
}
