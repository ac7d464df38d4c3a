//! Per-workspace secrets that sign unsubscribe and confirmation links.
crate::script_migration!("m0004_link_secrets");

const UP: &str = r#"
CREATE TABLE workspace_secrets (
    workspace_id BIGINT PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    secret {text} NOT NULL,
    created_at {ts} NOT NULL
)
"#;

const DOWN: &str = "DROP TABLE workspace_secrets";
