//! Trained model versions and the scores they produce.
crate::script_migration!("m0002_intelligence");

// `scores` holds the current score per (kind, subject) — one row, replaced on rescoring —
// so a page of contacts loads its scores with one indexed lookup; `score_history` keeps
// every score ever given, for audit and for charts of a lead warming up or cooling down.
// Subjects are contacts or deals, so there is no foreign key; erasing a contact deletes
// its scores explicitly.
const UP: &str = r#"
CREATE TABLE model_versions (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind {text} NOT NULL,
    version INTEGER NOT NULL,
    status {text} NOT NULL,
    message {text},
    metrics {json} NOT NULL,
    features {json} NOT NULL,
    parameters {json},
    rows_used BIGINT NOT NULL,
    positives BIGINT NOT NULL,
    window_from {ts} NOT NULL,
    window_to {ts} NOT NULL,
    trained_at {ts} NOT NULL,
    activated_at {ts}
);
CREATE UNIQUE INDEX model_versions_ws_kind_version ON model_versions (workspace_id, kind, version);

CREATE TABLE scores (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind {text} NOT NULL,
    subject_id BIGINT NOT NULL,
    model_version_id BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    score DOUBLE PRECISION NOT NULL,
    grade {text},
    reasons {json} NOT NULL,
    computed_at {ts} NOT NULL
);
CREATE UNIQUE INDEX scores_kind_subject ON scores (kind, subject_id);
CREATE INDEX scores_ws_kind_score ON scores (workspace_id, kind, score, id);

CREATE TABLE score_history (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind {text} NOT NULL,
    subject_id BIGINT NOT NULL,
    model_version_id BIGINT NOT NULL REFERENCES model_versions(id) ON DELETE CASCADE,
    score DOUBLE PRECISION NOT NULL,
    grade {text},
    computed_at {ts} NOT NULL
);
CREATE INDEX score_history_subject ON score_history (kind, subject_id, computed_at, id)
"#;

const DOWN: &str = r#"
DROP TABLE score_history;
DROP TABLE scores;
DROP TABLE model_versions
"#;
