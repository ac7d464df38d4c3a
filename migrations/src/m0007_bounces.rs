//! Bounce and complaint reports, kept to count soft bounces per address.
crate::script_migration!("m0007_bounces");

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
