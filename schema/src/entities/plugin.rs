//! `plugins` table: a named WebAssembly plugin of one workspace and its current state.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugins")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    pub enabled: bool,
    /// The version that runs (the newest, unless rolled back).
    pub active_version_id: Option<i64>,
    /// A version that scores beside the active one, its scores kept apart and never
    /// shown or acted on, until it is promoted.
    pub shadow_version_id: Option<i64>,
    /// Failed calls since the last success; at `failure_threshold` the plugin is disabled.
    pub consecutive_failures: i32,
    pub failure_threshold: i32,
    /// Why it was disabled, when the circuit breaker did it.
    pub disabled_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
