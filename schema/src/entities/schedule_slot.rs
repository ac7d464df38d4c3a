//! `schedule_slots` table: periodic work shared by processes, one row per kind of work.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "schedule_slots")]
pub struct Model {
    /// What the work is (`changes`, `rescore`, `retrain`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub work: String,
    /// When it is next due.
    pub due_at: DateTimeUtc,
    /// Data changed before this has been looked at (the change scan reads from here).
    pub covered_until: Option<DateTimeUtc>,
    /// The process doing it now.
    pub holder: Option<String>,
    /// Until when the holder may take; after this another process takes the work over.
    pub lease_until: Option<DateTimeUtc>,
    /// When a run last finished.
    pub done_at: Option<DateTimeUtc>,
    /// Runs finished.
    pub runs: i64,
    /// Runs failed in a row since the last that succeeded.
    pub failures: i64,
    /// Why the last run failed, until one succeeds.
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
