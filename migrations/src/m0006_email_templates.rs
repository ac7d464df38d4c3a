//! Email templates (Jinja syntax), checked when saved.
crate::script_migration!("m0006_email_templates");

const UP: &str = r#"
CREATE TABLE email_templates (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    subject {text} NOT NULL,
    html {text} NOT NULL,
    text {text} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX email_templates_ws_name ON email_templates (workspace_id, name, id)
"#;

const DOWN: &str = "DROP TABLE email_templates";
