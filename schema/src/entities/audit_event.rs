//! `audit_events` table: the audit log — one row per change a caller made (or per
//! mutation and sign-in that changed nothing traceable), append-only.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub at: DateTimeUtc,
    /// The API key that made the change, if a key did.
    pub api_key_id: Option<i64>,
    /// The console user who made it (or tried to sign in), if a person did.
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The mutation's root field (`updateContact`), or `signIn`.
    pub operation: String,
    /// What happened to the object, as the webhook event type names it (`contact.updated`);
    /// none for a mutation no event describes.
    pub action: Option<String>,
    /// The object's GraphQL type name and id.
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// `Contact:<id>` when the row holds a person's data: erasure clears its changes.
    pub subject: Option<String>,
    /// `{field: {old, new}}`, or the mutation's arguments; null once erased.
    pub changes: Option<Json>,
    /// `ok`, or the error code; for sign-ins the attempt's outcome.
    pub outcome: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
