//! `capture_forms` table: a sign-up form Rapport hosts at `/f/<public_id>`.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "capture_forms")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// The random, unique part of the form's address.
    #[sea_orm(unique)]
    pub public_id: String,
    /// How the team names it.
    pub name: String,
    /// The heading visitors read.
    pub title: String,
    /// The contact fields asked besides the email address, a JSON array of names
    /// (`first_name`, `last_name`, `phone`).
    pub fields: Json,
    /// The email topic a sign-up subscribes to.
    pub topic_id: Option<i64>,
    /// Whether marketing consent waits for the emailed confirmation.
    pub double_opt_in: bool,
    /// What the visitor reads after sending the form.
    pub success_message: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub archived_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
