//! `ingest_key_origins` table: the web origins (`https://shop.example`) an ingest key
//! may be used from.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "ingest_key_origins")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub ingest_key_id: i64,
    /// Scheme, host and port as a browser sends them in `Origin`.
    pub origin: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
