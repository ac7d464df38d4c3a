//! Scores that act: each history row keeps the value it replaced, so a score crossing a
//! threshold or a grade changing can be read straight off the history (sequence triggers,
//! later webhooks); and per-contact customer insights (churn risk, RFM, lifetime value)
//! are stored on each rescoring, so segments can filter on them with an index instead of
//! evaluating the customer-value model per contact, with their level and segment changes
//! logged for triggers, with the products recommended to each; and what templates say
//! besides the contact: a product's page and a user's email signature.
crate::script_migration!("m0012_insights");

const UP: &str = r#"
ALTER TABLE score_history ADD COLUMN previous_score DOUBLE PRECISION;
ALTER TABLE score_history ADD COLUMN previous_grade {text};
ALTER TABLE plugin_score_history ADD COLUMN previous_score DOUBLE PRECISION;

CREATE TABLE contact_insights (
    contact_id BIGINT PRIMARY KEY,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    churn_risk DOUBLE PRECISION,
    churn_level {text},
    churn_method {text},
    rfm_recency SMALLINT,
    rfm_frequency SMALLINT,
    rfm_monetary SMALLINT,
    rfm_segment {text},
    probability_alive DOUBLE PRECISION,
    expected_purchases DOUBLE PRECISION,
    expected_value DOUBLE PRECISION,
    recommended {json},
    computed_at {ts} NOT NULL
);
CREATE INDEX contact_insights_ws_level ON contact_insights (workspace_id, churn_level, contact_id);
CREATE INDEX contact_insights_ws_segment ON contact_insights (workspace_id, rfm_segment, contact_id);
CREATE INDEX contact_insights_ws_value ON contact_insights (workspace_id, expected_value, contact_id);

CREATE TABLE insight_changes (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    field {text} NOT NULL,
    previous {text},
    value {text},
    changed_at {ts} NOT NULL
);
CREATE INDEX insight_changes_contact ON insight_changes (contact_id, id);

ALTER TABLE products ADD COLUMN url {text};
ALTER TABLE users ADD COLUMN signature {text}
"#;

const DOWN: &str = r#"
ALTER TABLE users DROP COLUMN signature;
ALTER TABLE products DROP COLUMN url;
DROP TABLE insight_changes;
DROP TABLE contact_insights;
ALTER TABLE plugin_score_history DROP COLUMN previous_score;
ALTER TABLE score_history DROP COLUMN previous_grade;
ALTER TABLE score_history DROP COLUMN previous_score
"#;
