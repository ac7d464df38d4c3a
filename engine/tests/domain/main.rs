//! The engine's rules that need a database but no HTTP, on an in-memory SQLite database
//! each: one test binary, a module per room.

mod audit_log;
mod bulk_import;
mod contact_data;
mod enrollments;
mod lead_score_mail;
mod model_versions;
mod periodic_work;
mod records;
mod score_triggers;
mod segments;
mod webhook_outbox;

use rapport_engine::crm::{contacts, workspaces};
use rapport_engine::platform::auth::Principal;
use rapport_engine::platform::db;
use rapport_engine::values::Patch;
use sea_orm::DatabaseConnection;

/// A fresh, migrated in-memory database.
async fn database() -> DatabaseConnection {
    let db = db::connect("sqlite::memory:", 1)
        .await
        .expect("in-memory SQLite");
    db::migrate(&db).await.expect("migrations");
    db
}

/// A new workspace's owner.
async fn owner(db: &DatabaseConnection, name: &str) -> Principal {
    let ws = workspaces::create(db, name).await.expect("workspace");
    Principal::owner(ws.workspace.id)
}

/// A contact with this address.
async fn contact(db: &DatabaseConnection, who: &Principal, email: &str) -> i64 {
    contacts::create(
        db,
        who,
        contacts::ContactInput {
            email: Patch::Set(email.into()),
            ..Default::default()
        },
    )
    .await
    .expect("contact")
    .id
}
