//! Transactional email: one message to one contact from a saved template (a receipt, a
//! welcome), sent through the job queue under its purpose's consent rules and tracked
//! like campaign mail. The idempotency key is unique per workspace, so a client that
//! retries a request never sends twice.
crate::script_migration!("m0013_transactional");

const UP: &str = r#"
CREATE TABLE transactional_messages (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    template_id BIGINT NOT NULL,
    idempotency_key {text} NOT NULL,
    purpose {text} NOT NULL,
    from_email {text} NOT NULL,
    from_name {text},
    state {text} NOT NULL,
    reason {text},
    created_at {ts} NOT NULL,
    claimed_at {ts},
    sent_at {ts},
    opened_at {ts},
    clicked_at {ts},
    opens INTEGER NOT NULL,
    clicks INTEGER NOT NULL
);
CREATE UNIQUE INDEX transactional_messages_key ON transactional_messages (workspace_id, idempotency_key);
CREATE INDEX transactional_messages_contact ON transactional_messages (contact_id, id)
"#;

const DOWN: &str = r#"
DROP TABLE transactional_messages
"#;
