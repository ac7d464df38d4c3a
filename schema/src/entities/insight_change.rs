//! `insight_changes` table: a contact's churn level or RFM segment changing, appended
//! when a rescoring finds it different (sequence triggers read it past a cursor).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "insight_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub contact_id: i64,
    /// `churn_level` or `rfm_segment`.
    pub field: String,
    /// The value before (none when the contact had none).
    pub previous: Option<String>,
    /// The value now (none when the contact no longer has one).
    pub value: Option<String>,
    pub changed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
