//! Lead capture and safe retries: publishable ingest keys limited to the web origins
//! they name, hosted sign-up forms, and the `Idempotency-Key` answers a retried create
//! gets back instead of a second row.
crate::script_migration!("m0016_lead_capture");

const UP: &str = r#"
CREATE TABLE idempotency_keys (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key {text} NOT NULL,
    fingerprint {text} NOT NULL,
    response {text},
    created_at {ts} NOT NULL,
    completed_at {ts}
);
CREATE UNIQUE INDEX idempotency_keys_ws_key ON idempotency_keys (workspace_id, key);
CREATE INDEX idempotency_keys_ws_created ON idempotency_keys (workspace_id, created_at);

CREATE TABLE ingest_keys (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    prefix {text} NOT NULL,
    hash {text} NOT NULL,
    created_at {ts} NOT NULL,
    last_used_at {ts},
    revoked_at {ts}
);
CREATE UNIQUE INDEX ingest_keys_prefix ON ingest_keys (prefix);

CREATE TABLE ingest_key_origins (
    id {pk},
    ingest_key_id BIGINT NOT NULL REFERENCES ingest_keys(id) ON DELETE CASCADE,
    origin {text} NOT NULL
);
CREATE UNIQUE INDEX ingest_key_origins_key ON ingest_key_origins (ingest_key_id, origin);
CREATE INDEX ingest_key_origins_origin ON ingest_key_origins (origin);

CREATE TABLE capture_forms (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    public_id {text} NOT NULL,
    name {text} NOT NULL,
    title {text} NOT NULL,
    fields {json} NOT NULL,
    topic_id BIGINT REFERENCES email_topics(id) ON DELETE SET NULL,
    double_opt_in BOOLEAN NOT NULL,
    success_message {text} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    archived_at {ts}
);
CREATE UNIQUE INDEX capture_forms_public_id ON capture_forms (public_id);
CREATE INDEX capture_forms_ws ON capture_forms (workspace_id)
"#;

const DOWN: &str = r#"
DROP TABLE capture_forms;
DROP TABLE ingest_key_origins;
DROP TABLE ingest_keys;
DROP TABLE idempotency_keys
"#;
