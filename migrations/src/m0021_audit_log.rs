//! The audit log: who changed what, when and from where. Appended to by every mutation and
//! every sign-in; read by admins; pruned after its retention; erasure takes the personal
//! values out of a person's rows and keeps the rows.
crate::script_migration!("m0021_audit_log");

const UP: &str = r#"
CREATE TABLE audit_events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    at {ts} NOT NULL,
    api_key_id BIGINT,
    user_id BIGINT,
    ip {text},
    user_agent {text},
    operation {text} NOT NULL,
    action {text},
    object_type {text},
    object_id {text},
    subject {text},
    changes {json},
    outcome {text} NOT NULL
);
CREATE INDEX audit_events_workspace ON audit_events (workspace_id, id);
CREATE INDEX audit_events_object ON audit_events (workspace_id, object_type, object_id, id);
CREATE INDEX audit_events_subject ON audit_events (subject);
CREATE INDEX audit_events_at ON audit_events (at)
"#;

const DOWN: &str = r#"
DROP TABLE audit_events
"#;
