//! Plugin runs: a record of a plugin call — its input as the plugin saw it, its answer or
//! fault, its log, fuel and time — kept for every failed call and a sample of the rest, so
//! a plugin misbehaving in production can be seen and replayed instead of guessed at.
//! The captured input is personal data: it is erased and moved with its contact.
crate::script_migration!("m0025_plugin_runs");

const UP: &str = r#"
CREATE TABLE plugin_runs (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    plugin_id BIGINT NOT NULL REFERENCES plugins(id) ON DELETE CASCADE,
    version_id BIGINT NOT NULL REFERENCES plugin_versions(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    export {text} NOT NULL,
    input_sha256 {text} NOT NULL,
    input_bytes BIGINT NOT NULL,
    input {text},
    config {text} NOT NULL,
    as_of {text} NOT NULL,
    output {json},
    log {json} NOT NULL,
    log_dropped INTEGER NOT NULL,
    fuel_used BIGINT NOT NULL,
    micros BIGINT NOT NULL,
    error {text},
    failed BOOLEAN NOT NULL,
    at {ts} NOT NULL
);
CREATE INDEX plugin_runs_plugin ON plugin_runs (plugin_id, id);
CREATE INDEX plugin_runs_contact ON plugin_runs (contact_id, id);
CREATE INDEX plugin_runs_at ON plugin_runs (at)
"#;

const DOWN: &str = r#"
DROP TABLE plugin_runs
"#;
