//! `plugin_runs` table: one recorded plugin call (every failed call and a sample of the
//! rest), with the input it was given, so it can be read and replayed.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub plugin_id: i64,
    pub version_id: i64,
    /// The contact the call was about; 0 for a call about a deal or company.
    pub contact_id: i64,
    /// `contact`, `deal` or `company`: what the call was about.
    pub subject: String,
    /// The deal or company the call was about (none for a contact's call).
    pub record_id: Option<i64>,
    /// `score` or `next-best-actions`.
    pub export: String,
    /// SHA-256 (hex) of the input's data: equal inputs are seen as equal without reading them.
    pub input_sha256: String,
    /// The input's data size in bytes.
    pub input_bytes: i64,
    /// The input query's `data` as the plugin got it; none when over the capture cap.
    pub input: Option<String>,
    /// The plugin's configuration as the plugin got it (JSON text).
    pub config: String,
    /// The moment the input described (RFC 3339): the plugin's clock.
    pub as_of: String,
    /// The answer: `{score, reasons}` or the list of actions.
    pub output: Option<Json>,
    /// `[{level, message}, ...]`.
    pub log: Json,
    pub log_dropped: i32,
    pub fuel_used: i64,
    pub micros: i64,
    /// The fault or refusal, as the plugin's author sees it.
    pub error: Option<String>,
    /// Whether the call failed (a fault, not a refusal of the input).
    pub failed: bool,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
