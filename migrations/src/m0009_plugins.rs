//! WebAssembly plugins: their versions (the component itself, its input query,
//! configuration and limits), what happened to them, the scores they gave and the actions
//! they recommended with the answers people gave.
crate::script_migration!("m0009_plugins");

// The component's bytes live in the database (once per content hash, however many
// versions use them) so every process sharing it can run the plugin; compiled code is cached per machine on disk. `plugin_scores` holds the current
// score per (plugin, contact), `plugin_score_history` every score given.
const UP: &str = r#"
CREATE TABLE plugins (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    enabled BOOLEAN NOT NULL,
    active_version_id BIGINT,
    consecutive_failures INTEGER NOT NULL,
    failure_threshold INTEGER NOT NULL,
    disabled_reason {text},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE UNIQUE INDEX plugins_ws_name ON plugins (workspace_id, name);

CREATE TABLE plugin_components (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    sha256 {text} NOT NULL,
    wasm {blob} NOT NULL,
    created_at {ts} NOT NULL
);
CREATE UNIQUE INDEX plugin_components_ws_sha ON plugin_components (workspace_id, sha256);

CREATE TABLE plugin_versions (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    declared_name {text} NOT NULL,
    declared_version {text} NOT NULL,
    scores BOOLEAN NOT NULL,
    recommends BOOLEAN NOT NULL,
    wasm_sha256 {text} NOT NULL,
    input_query {text} NOT NULL,
    input_cost INTEGER NOT NULL,
    config {json} NOT NULL,
    limits {json} NOT NULL,
    created_at {ts} NOT NULL,
    created_by BIGINT
);
CREATE UNIQUE INDEX plugin_versions_plugin_version ON plugin_versions (plugin_id, version);

CREATE TABLE plugin_events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT,
    kind {text} NOT NULL,
    message {text},
    actor_key_id BIGINT,
    at {ts} NOT NULL
);
CREATE INDEX plugin_events_plugin_at ON plugin_events (plugin_id, at, id);

CREATE TABLE plugin_scores (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES plugin_versions(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    reasons {json} NOT NULL,
    fuel_used BIGINT NOT NULL,
    computed_at {ts} NOT NULL
);
CREATE UNIQUE INDEX plugin_scores_plugin_contact ON plugin_scores (plugin_id, contact_id);
CREATE INDEX plugin_scores_ws_contact ON plugin_scores (workspace_id, contact_id);

CREATE TABLE plugin_score_history (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES plugin_versions(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    computed_at {ts} NOT NULL
);
CREATE INDEX plugin_score_history_contact ON plugin_score_history (workspace_id, contact_id, computed_at, id);

CREATE TABLE plugin_actions (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES plugin_versions(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    kind {text} NOT NULL,
    params {json} NOT NULL,
    priority INTEGER NOT NULL,
    rationale {text} NOT NULL,
    status {text} NOT NULL,
    computed_at {ts} NOT NULL,
    responded_at {ts},
    responded_by BIGINT,
    note {text},
    outcome {json}
);
CREATE INDEX plugin_actions_contact ON plugin_actions (workspace_id, contact_id, status, priority, id);
CREATE INDEX plugin_actions_plugin ON plugin_actions (plugin_id, status, kind)
"#;

const DOWN: &str = r#"
DROP TABLE plugin_actions;
DROP TABLE plugin_score_history;
DROP TABLE plugin_scores;
DROP TABLE plugin_events;
DROP TABLE plugin_versions;
DROP TABLE plugin_components;
DROP TABLE plugins
"#;
