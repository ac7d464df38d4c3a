//! Each contact's email hashed as the suppression list keys addresses, so a filter can
//! tell in SQL whether a contact may be emailed (`emailPermission`). Existing rows are
//! hashed here in Rust: SQLite has no SHA-256 of its own. The entity keeps the column in
//! step on every save afterwards.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend, FromQueryResult, Statement};
use sha2::{Digest, Sha256};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0017_contact_email_hash"
    }
}

#[derive(FromQueryResult)]
struct Row {
    id: i64,
    email: String,
}

/// Rows hashed per statement.
const BATCH: u64 = 1000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(
            manager,
            "ALTER TABLE contacts ADD COLUMN email_hash {text};\
             CREATE INDEX contacts_ws_email_hash ON contacts (workspace_id, email_hash)",
        )
        .await?;
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let mut after = 0i64;
        loop {
            let rows = Row::find_by_statement(Statement::from_sql_and_values(
                backend,
                match backend {
                    DatabaseBackend::Postgres => {
                        "SELECT id, email FROM contacts WHERE id > $1 AND email IS NOT NULL \
                         ORDER BY id LIMIT $2"
                    }
                    _ => {
                        "SELECT id, email FROM contacts WHERE id > ? AND email IS NOT NULL \
                         ORDER BY id LIMIT ?"
                    }
                },
                [after.into(), (BATCH as i64).into()],
            ))
            .all(db)
            .await?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.id;
            // One statement per batch: a CASE over the batch's ids.
            let mut sql = String::from("UPDATE contacts SET email_hash = CASE id");
            for r in &rows {
                let hash: String = Sha256::digest(r.email.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                // Ids are numbers and hashes hex: nothing here needs quoting beyond this.
                sql.push_str(&format!(" WHEN {} THEN '{hash}'", r.id));
            }
            let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
            sql.push_str(&format!(" END WHERE id IN ({})", ids.join(",")));
            db.execute_unprepared(&sql).await?;
            if (rows.len() as u64) < BATCH {
                break;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(
            manager,
            "DROP INDEX contacts_ws_email_hash; ALTER TABLE contacts DROP COLUMN email_hash",
        )
        .await
    }
}
