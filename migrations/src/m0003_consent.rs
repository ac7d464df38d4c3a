//! Consent history and the suppression list.
crate::script_migration!("m0003_consent");

// Consent is an append-only history: the current status of a (contact, channel, purpose)
// is its latest event, so the index ends with the id that orders events. Suppressions
// hold a SHA-256 of the normalised address, not the address: an erased person stays
// suppressed without their email being kept.
const UP: &str = r#"
CREATE TABLE consent_events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    channel {text} NOT NULL,
    purpose {text} NOT NULL,
    status {text} NOT NULL,
    lawful_basis {text} NOT NULL,
    source {text},
    proof_ip {text},
    proof_user_agent {text},
    proof_form {text},
    recorded_at {ts} NOT NULL,
    recorded_by_key_id BIGINT REFERENCES api_keys(id) ON DELETE SET NULL
);
CREATE INDEX consent_events_contact ON consent_events (contact_id, channel, purpose, id);

CREATE TABLE suppressions (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email_hash {text} NOT NULL,
    reason {text} NOT NULL,
    note {text},
    created_at {ts} NOT NULL
);
CREATE UNIQUE INDEX suppressions_ws_email ON suppressions (workspace_id, email_hash);
CREATE INDEX suppressions_ws_created ON suppressions (workspace_id, created_at, id)
"#;

const DOWN: &str = r#"
DROP TABLE suppressions;
DROP TABLE consent_events
"#;
