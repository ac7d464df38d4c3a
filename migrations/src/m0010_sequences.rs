//! Drip sequences: their versions (the step graph as JSON), enrollments as persisted state
//! machines, the history of every step an enrollment went through, the email each step
//! sent, lifecycle changes (a trigger source), and the cursors of the trigger scan.
crate::script_migration!("m0010_sequences");

// `sequence_messages` is unique per (enrollment, position): a step that sends runs at one
// position of one enrollment, so a re-run after a crash finds the row and never sends
// again. `sequence_enrollments (status, next_run_at)` is the due-work index the ticker
// scans. `sequence_cursors` remembers, per workspace and source table, the last row the
// trigger scan has looked at, so each event or stage change enrolls at most once.
const UP: &str = r#"
CREATE TABLE sequences (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    status {text} NOT NULL,
    current_version_id BIGINT,
    activated_at {ts},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE UNIQUE INDEX sequences_ws_name ON sequences (workspace_id, name);
CREATE INDEX sequences_ws_status ON sequences (workspace_id, status);

CREATE TABLE sequence_versions (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    sequence_id BIGINT NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    definition {json} NOT NULL,
    created_at {ts} NOT NULL,
    created_by BIGINT
);
CREATE UNIQUE INDEX sequence_versions_seq_version ON sequence_versions (sequence_id, version);

CREATE TABLE sequence_enrollments (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    sequence_id BIGINT NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES sequence_versions(id),
    contact_id BIGINT NOT NULL,
    status {text} NOT NULL,
    step_key {text} NOT NULL,
    position INTEGER NOT NULL,
    step_entered_at {ts} NOT NULL,
    next_run_at {ts},
    claimed_at {ts},
    trigger {text} NOT NULL,
    exit_reason {text},
    enrolled_at {ts} NOT NULL,
    finished_at {ts},
    updated_at {ts} NOT NULL
);
CREATE INDEX sequence_enrollments_due ON sequence_enrollments (status, next_run_at);
CREATE INDEX sequence_enrollments_contact ON sequence_enrollments (workspace_id, contact_id, sequence_id);
CREATE INDEX sequence_enrollments_seq ON sequence_enrollments (sequence_id, status, step_key);

CREATE TABLE sequence_step_events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    sequence_id BIGINT NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL,
    enrollment_id BIGINT NOT NULL REFERENCES sequence_enrollments(id) ON DELETE CASCADE,
    step_key {text} NOT NULL,
    outcome {text} NOT NULL,
    detail {text},
    at {ts} NOT NULL
);
CREATE INDEX sequence_step_events_enrollment ON sequence_step_events (enrollment_id, id);
CREATE INDEX sequence_step_events_seq ON sequence_step_events (sequence_id, step_key, outcome);

CREATE TABLE sequence_messages (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    sequence_id BIGINT NOT NULL REFERENCES sequences(id) ON DELETE CASCADE,
    enrollment_id BIGINT NOT NULL REFERENCES sequence_enrollments(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    step_key {text} NOT NULL,
    contact_id BIGINT NOT NULL,
    state {text} NOT NULL,
    reason {text},
    claimed_at {ts},
    sent_at {ts},
    opened_at {ts},
    clicked_at {ts},
    opens INTEGER NOT NULL,
    clicks INTEGER NOT NULL
);
CREATE UNIQUE INDEX sequence_messages_once ON sequence_messages (enrollment_id, position);
CREATE INDEX sequence_messages_contact_sent ON sequence_messages (workspace_id, contact_id, sent_at);
CREATE INDEX sequence_messages_seq_step ON sequence_messages (sequence_id, step_key, state);

CREATE TABLE lifecycle_changes (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    from_stage {text},
    to_stage {text} NOT NULL,
    changed_at {ts} NOT NULL
);
CREATE INDEX lifecycle_changes_ws_id ON lifecycle_changes (workspace_id, id);
CREATE INDEX lifecycle_changes_contact ON lifecycle_changes (contact_id, changed_at);

CREATE TABLE sequence_cursors (
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    source {text} NOT NULL,
    last_id BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, source)
);
CREATE INDEX campaign_messages_contact_sent ON campaign_messages (workspace_id, contact_id, sent_at)
"#;

const DOWN: &str = r#"
DROP INDEX campaign_messages_contact_sent;
DROP TABLE sequence_cursors;
DROP TABLE lifecycle_changes;
DROP TABLE sequence_messages;
DROP TABLE sequence_step_events;
DROP TABLE sequence_enrollments;
DROP TABLE sequence_versions;
DROP TABLE sequences
"#;
