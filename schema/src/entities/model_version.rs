//! `model_versions` table: one trained version of a built-in model.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "model_versions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// A `ModelKind`: `lead_score`, `win_probability`, `customer_value`, ...
    pub kind: String,
    /// 1, 2, ... per workspace and kind.
    pub version: i32,
    /// `active`, `candidate`, `retired` or `insufficient_data`.
    pub status: String,
    /// Why a version was not activated, or why it could not be trained.
    pub message: Option<String>,
    /// AUC, log loss, calibration, row counts.
    pub metrics: Json,
    /// The raw feature names.
    pub features: Json,
    /// The fitted encoder and coefficients; null when training was refused.
    pub parameters: Option<Json>,
    pub rows_used: i64,
    pub positives: i64,
    pub window_from: DateTimeUtc,
    pub window_to: DateTimeUtc,
    pub trained_at: DateTimeUtc,
    pub activated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
