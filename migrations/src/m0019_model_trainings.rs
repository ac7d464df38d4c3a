//! Training a model becomes a job a person starts and watches: each request is a row
//! with its state, the stage it is at and how far along, and the version it produced (or
//! why it failed), so the console shows progress instead of holding a request open.
crate::script_migration!("m0019_model_trainings");

const UP: &str = r#"
CREATE TABLE model_trainings (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind {text} NOT NULL,
    state {text} NOT NULL,
    stage {text} NOT NULL,
    progress DOUBLE PRECISION NOT NULL,
    options {json} NOT NULL,
    version_id BIGINT REFERENCES model_versions(id) ON DELETE SET NULL,
    error {text},
    requested_by_key_id BIGINT,
    created_at {ts} NOT NULL,
    started_at {ts},
    finished_at {ts}
);
CREATE INDEX model_trainings_workspace ON model_trainings (workspace_id, kind, id)
"#;

const DOWN: &str = r#"
DROP TABLE model_trainings
"#;
