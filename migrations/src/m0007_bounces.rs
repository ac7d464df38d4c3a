//! Bounce and complaint reports, kept to count soft bounces per address.
use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_bounces"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(manager, DOWN).await
    }
}

const UP: &str = r#"
CREATE TABLE bounce_events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email_hash {text} NOT NULL,
    kind {text} NOT NULL,
    status {text},
    diagnostic {text},
    received_at {ts} NOT NULL
);
CREATE INDEX bounce_events_ws_email ON bounce_events (workspace_id, email_hash, kind, id)
"#;

const DOWN: &str = "DROP TABLE bounce_events";
