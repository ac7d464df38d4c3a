//! Outbound webhooks. An app registers endpoints; every change worth telling is written as
//! an event in the same transaction as the change (the outbox), with one delivery row per
//! endpoint subscribed to it, so nothing that did not commit is ever reported and nothing
//! that did is lost. Deliveries are sent in order per endpoint and subject, retried with
//! back-off, and every attempt is kept for the endpoint's log.
crate::script_migration!("m0020_webhooks");

const UP: &str = r#"
CREATE TABLE webhook_endpoints (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    url {text} NOT NULL,
    description {text} NOT NULL,
    events {json} NOT NULL,
    secret {text} NOT NULL,
    enabled BOOLEAN NOT NULL,
    disabled_reason {text},
    failing_since {ts},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, id);

CREATE TABLE webhook_events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    event_type {text} NOT NULL,
    subject {text} NOT NULL,
    payload {json} NOT NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX webhook_events_workspace ON webhook_events (workspace_id, id);

CREATE TABLE webhook_deliveries (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id BIGINT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    subject {text} NOT NULL,
    state {text} NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at {ts} NOT NULL,
    claimed_at {ts},
    last_status INTEGER,
    last_error {text},
    delivered_at {ts},
    created_at {ts} NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, subject, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);

CREATE TABLE webhook_attempts (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at {ts} NOT NULL,
    status INTEGER,
    latency_ms BIGINT NOT NULL,
    error {text},
    response_excerpt {text}
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id)
"#;

const DOWN: &str = r#"
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints
"#;
