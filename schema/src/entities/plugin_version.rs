//! `plugin_versions` table: one uploaded component with its input query, configuration
//! and limits.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_versions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub plugin_id: i64,
    /// 1, 2, ... per plugin.
    pub version: i32,
    /// What the component's `describe()` said.
    pub declared_name: String,
    pub declared_version: String,
    pub scores: bool,
    pub recommends: bool,
    /// The component, in `plugin_components`.
    pub wasm_sha256: String,
    /// GraphQL query with a `$contactId` variable, run for each contact.
    pub input_query: String,
    /// The query's complexity, as the schema computes it.
    pub input_cost: i32,
    pub config: Json,
    /// `rapport_plugins::Limits` as JSON.
    pub limits: Json,
    /// Event types whose tracking calls the version's next-best-actions (a JSON array of
    /// strings); `None` without hooks.
    pub hooks: Option<Json>,
    /// What the version scores: `contact`, `deal` or `company` (the id its input query
    /// declares).
    pub subject: String,
    pub created_at: DateTimeUtc,
    /// The API key that uploaded it.
    pub created_by: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
