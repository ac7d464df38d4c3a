//! Live notices on SQLite: GraphQL subscriptions hear of changes made by other processes
//! by reading this table past the last id they saw (PostgreSQL uses `NOTIFY` and leaves it
//! empty). Rows live a few minutes.
crate::script_migration!("m0022_live_notices");

const UP: &str = r#"
CREATE TABLE live_notices (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    topic {text} NOT NULL,
    scope_id BIGINT NOT NULL,
    object_id BIGINT NOT NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX live_notices_created ON live_notices (created_at)
"#;

const DOWN: &str = r#"
DROP TABLE live_notices
"#;
