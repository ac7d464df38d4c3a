//! Plugins that score deals and companies, not only contacts. A version's subject is the
//! record its input query is about (`$contactId`, `$dealId` or `$companyId`); the scores
//! of deals and companies are kept apart from contacts' (they are not personal data of
//! one person, and the contact tables' erasure and merge rules do not apply to them).
//! A run record of a deal or company holds its id in `record_id` and 0 as its contact, so
//! a contact's export, erasure and merge (all keyed by `contact_id`) never take it.
crate::script_migration!("m0027_plugin_subjects");

const UP: &str = r#"
ALTER TABLE plugin_versions ADD COLUMN subject {text} NOT NULL DEFAULT 'contact';
ALTER TABLE plugin_runs ADD COLUMN subject {text} NOT NULL DEFAULT 'contact';
ALTER TABLE plugin_runs ADD COLUMN record_id BIGINT;

CREATE TABLE plugin_record_scores (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES plugin_versions(id) ON DELETE CASCADE,
    subject {text} NOT NULL,
    record_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    reasons {json} NOT NULL,
    fuel_used BIGINT NOT NULL,
    computed_at {ts} NOT NULL
);
CREATE UNIQUE INDEX plugin_record_scores_plugin_record ON plugin_record_scores (plugin_id, subject, record_id);
CREATE INDEX plugin_record_scores_ws_record ON plugin_record_scores (workspace_id, subject, record_id);
CREATE INDEX plugin_runs_record ON plugin_runs (plugin_id, record_id, id)
"#;

const DOWN: &str = r#"
DROP INDEX plugin_runs_record;
DROP TABLE plugin_record_scores;
ALTER TABLE plugin_runs DROP COLUMN record_id;
ALTER TABLE plugin_runs DROP COLUMN subject;
ALTER TABLE plugin_versions DROP COLUMN subject
"#;
