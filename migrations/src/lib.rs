//! Schema migrations for SQLite and PostgreSQL.
//!
//! Each migration is one DDL script written once with placeholders for the few types the
//! two databases spell differently (`{pk}`, `{ts}`, `{json}`, `{text}`, `{blob}`), so the two
//! schemas cannot drift apart.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

/// Defines `Migration` named `$name` that runs the file's `UP` script forward and its
/// `DOWN` script back.
macro_rules! script_migration {
    ($name:literal) => {
        pub struct Migration;

        impl sea_orm_migration::MigrationName for Migration {
            fn name(&self) -> &str {
                $name
            }
        }

        #[sea_orm_migration::prelude::async_trait::async_trait]
        impl sea_orm_migration::MigrationTrait for Migration {
            async fn up(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm_migration::DbErr> {
                crate::run_script(manager, UP).await
            }

            async fn down(
                &self,
                manager: &sea_orm_migration::SchemaManager,
            ) -> Result<(), sea_orm_migration::DbErr> {
                crate::run_script(manager, DOWN).await
            }
        }
    };
}
pub(crate) use script_migration;

mod m0001_crm_graph;
mod m0002_intelligence;
mod m0003_consent;
mod m0004_link_secrets;
mod m0005_segments;
mod m0006_email_templates;
mod m0007_bounces;
mod m0008_campaigns;
mod m0009_plugins;
mod m0010_sequences;
mod m0011_send_pacing;
mod m0012_insights;
mod m0013_transactional;
mod m0014_custom_fields;
mod m0015_topics;
mod m0016_lead_capture;
mod m0017_contact_email_hash;
mod m0018_console_accounts;
mod m0019_model_trainings;
mod m0020_webhooks;
mod m0021_audit_log;
mod m0022_live_notices;
mod m0023_contacts_by_id;
mod m0024_imports;
mod m0025_plugin_runs;
mod m0026_plugin_shadows;
mod m0027_plugin_subjects;
mod m0028_schedule_slots;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_crm_graph::Migration),
            Box::new(m0002_intelligence::Migration),
            Box::new(m0003_consent::Migration),
            Box::new(m0004_link_secrets::Migration),
            Box::new(m0005_segments::Migration),
            Box::new(m0006_email_templates::Migration),
            Box::new(m0007_bounces::Migration),
            Box::new(m0008_campaigns::Migration),
            Box::new(m0009_plugins::Migration),
            Box::new(m0010_sequences::Migration),
            Box::new(m0011_send_pacing::Migration),
            Box::new(m0012_insights::Migration),
            Box::new(m0013_transactional::Migration),
            Box::new(m0014_custom_fields::Migration),
            Box::new(m0015_topics::Migration),
            Box::new(m0016_lead_capture::Migration),
            Box::new(m0017_contact_email_hash::Migration),
            Box::new(m0018_console_accounts::Migration),
            Box::new(m0019_model_trainings::Migration),
            Box::new(m0020_webhooks::Migration),
            Box::new(m0021_audit_log::Migration),
            Box::new(m0022_live_notices::Migration),
            Box::new(m0023_contacts_by_id::Migration),
            Box::new(m0024_imports::Migration),
            Box::new(m0025_plugin_runs::Migration),
            Box::new(m0026_plugin_shadows::Migration),
            Box::new(m0027_plugin_subjects::Migration),
            Box::new(m0028_schedule_slots::Migration),
        ]
    }
}

/// Runs a DDL script: statements separated by `;`, placeholders filled in for the backend.
async fn run_script(manager: &SchemaManager<'_>, script: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let sql = fill_placeholders(script, db.get_database_backend());
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        db.execute_unprepared(statement).await?;
    }
    Ok(())
}

fn fill_placeholders(script: &str, backend: DatabaseBackend) -> String {
    // Text compares bytewise ("C" collation) on PostgreSQL as it does on SQLite, so a
    // sort, a range filter or a keyset cursor gives the same answer on both.
    let (pk, ts, json, text, blob) = match backend {
        DatabaseBackend::Postgres => (
            "BIGSERIAL PRIMARY KEY",
            "TIMESTAMPTZ",
            "JSONB",
            "TEXT COLLATE \"C\"",
            "BYTEA",
        ),
        // INTEGER PRIMARY KEY is SQLite's rowid alias; AUTOINCREMENT keeps ids of
        // deleted rows from being reused, so a stale id can never name a new row.
        _ => (
            "INTEGER PRIMARY KEY AUTOINCREMENT",
            "TEXT",
            "TEXT",
            "TEXT",
            "BLOB",
        ),
    };
    script
        .replace("{pk}", pk)
        .replace("{ts}", ts)
        .replace("{json}", json)
        .replace("{text}", text)
        .replace("{blob}", blob)
}
