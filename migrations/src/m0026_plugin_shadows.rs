//! Shadow versions of plugins: a version that scores beside the active one — its scores
//! kept apart, never shown, never acted on — until it is measured and promoted.
//! The shadow scores are personal data: erased and moved with their contact.
//! And event hooks: the event types whose tracking calls a version's next-best-actions.
crate::script_migration!("m0026_plugin_shadows");

const UP: &str = r#"
ALTER TABLE plugins ADD COLUMN shadow_version_id BIGINT;
ALTER TABLE plugin_versions ADD COLUMN hooks {json};

CREATE TABLE plugin_shadow_scores (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES plugin_versions(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    reasons {json} NOT NULL,
    computed_at {ts} NOT NULL
);
CREATE UNIQUE INDEX plugin_shadow_scores_version_contact ON plugin_shadow_scores (version_id, contact_id);
CREATE INDEX plugin_shadow_scores_ws_contact ON plugin_shadow_scores (workspace_id, contact_id)
"#;

const DOWN: &str = r#"
DROP TABLE plugin_shadow_scores;
ALTER TABLE plugin_versions DROP COLUMN hooks;
ALTER TABLE plugins DROP COLUMN shadow_version_id
"#;
