//! `users` table.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub team_id: Option<i64>,
    pub name: String,
    pub email: String,
    /// Access: admin, manager, member or viewer.
    pub role: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
    /// How the user signs email (plain text, several lines), for templates' `owner.signature`.
    pub signature: Option<String>,
    /// argon2id PHC string; `None` until the person sets a password. Never leaves the engine.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Failed sign-ins since the last successful one.
    pub failed_sign_ins: i32,
    /// Sign-in refused until then (back-off after repeated failures).
    pub locked_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Written by hand so that a logged user never shows its password hash.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}
