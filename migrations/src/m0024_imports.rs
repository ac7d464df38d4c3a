//! CSV imports become jobs a person starts over the API and watches: each import is a row
//! with its state and counts, and its uploaded file and reject file are kept as chunks in
//! the database, so whichever process works the job can read them and any process can
//! serve the reject file. Deals gain an external id, the key a deal import upserts by.
crate::script_migration!("m0024_imports");

const UP: &str = r#"
CREATE TABLE imports (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind {text} NOT NULL,
    state {text} NOT NULL,
    dry_run BOOLEAN NOT NULL,
    file_name {text} NOT NULL,
    file_bytes BIGINT NOT NULL,
    columns {json} NOT NULL,
    total BIGINT,
    processed BIGINT NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    error {text},
    requested_by_key_id BIGINT,
    requested_by_user_id BIGINT,
    created_at {ts} NOT NULL,
    started_at {ts},
    finished_at {ts}
);
CREATE INDEX imports_workspace ON imports (workspace_id, id);
CREATE TABLE import_chunks (
    import_id BIGINT NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    part {text} NOT NULL,
    seq INTEGER NOT NULL,
    data {blob} NOT NULL,
    PRIMARY KEY (import_id, part, seq)
);
ALTER TABLE deals ADD COLUMN external_id {text};
CREATE UNIQUE INDEX deals_external_id ON deals (workspace_id, external_id)
"#;

const DOWN: &str = r#"
DROP INDEX deals_external_id;
ALTER TABLE deals DROP COLUMN external_id;
DROP TABLE import_chunks;
DROP TABLE imports
"#;
