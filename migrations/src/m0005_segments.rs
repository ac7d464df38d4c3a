//! Segments: saved contact filters, the audiences of campaigns and sequence triggers.
crate::script_migration!("m0005_segments");

const UP: &str = r#"
CREATE TABLE segments (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    description {text},
    filter {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX segments_ws_name ON segments (workspace_id, name, id)
"#;

const DOWN: &str = "DROP TABLE segments";
