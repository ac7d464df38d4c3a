//! Campaigns: A/B variants, and one message row per (campaign, contact) whose unique
//! constraint is what makes delivery exactly-once.
crate::script_migration!("m0008_campaigns");

const UP: &str = r#"
CREATE TABLE campaigns (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    segment_id BIGINT NOT NULL REFERENCES segments(id),
    from_email {text} NOT NULL,
    from_name {text},
    status {text} NOT NULL,
    scheduled_at {ts},
    started_at {ts},
    finished_at {ts},
    rate_per_second INTEGER,
    test_share DOUBLE PRECISION,
    test_wait_minutes INTEGER,
    winner_metric {text},
    winner_variant_id BIGINT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    status_reason {text},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX campaigns_ws_status ON campaigns (workspace_id, status, id);
CREATE TABLE campaign_variants (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    weight INTEGER NOT NULL,
    subject {text} NOT NULL,
    html {text} NOT NULL,
    text {text} NOT NULL
);
CREATE INDEX campaign_variants_campaign ON campaign_variants (campaign_id, id);
CREATE TABLE campaign_messages (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    variant_id BIGINT REFERENCES campaign_variants(id),
    state {text} NOT NULL,
    reason {text},
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at {ts} NOT NULL,
    claimed_at {ts},
    sent_at {ts},
    failed_at {ts},
    bounced_at {ts},
    opened_at {ts},
    clicked_at {ts},
    unsubscribed_at {ts},
    opens INTEGER NOT NULL DEFAULT 0,
    clicks INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX campaign_messages_once ON campaign_messages (campaign_id, contact_id);
CREATE INDEX campaign_messages_state ON campaign_messages (campaign_id, state, id);
CREATE INDEX campaign_messages_contact ON campaign_messages (workspace_id, contact_id, id)
"#;

const DOWN: &str =
    "DROP TABLE campaign_messages; DROP TABLE campaign_variants; DROP TABLE campaigns";
