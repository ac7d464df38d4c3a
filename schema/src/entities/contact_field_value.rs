//! `contact_field_values` table: a contact's value of a typed custom field, in a typed
//! column (one row per option of a multi-select).
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contact_field_values")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub contact_id: i64,
    pub field_id: i64,
    /// Numbers, and booleans as 1 or 0.
    pub number_value: Option<f64>,
    /// Text, dates as `YYYY-MM-DD`, options.
    pub text_value: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
