//! Email topics: a workspace's kinds of marketing mail (newsletter, product updates), each
//! campaign and sequence naming its topic, and each contact's choices per topic — an
//! append-only history like consent's, the latest choice standing. Marketing consent
//! still decides whether any marketing mail goes; a topic can only narrow it.
crate::script_migration!("m0015_topics");

const UP: &str = r#"
CREATE TABLE email_topics (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key {text} NOT NULL,
    name {text} NOT NULL,
    description {text},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE UNIQUE INDEX email_topics_ws_key ON email_topics (workspace_id, key);

CREATE TABLE topic_preferences (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    topic_id BIGINT NOT NULL REFERENCES email_topics(id) ON DELETE CASCADE,
    subscribed BOOLEAN NOT NULL,
    source {text},
    recorded_at {ts} NOT NULL
);
CREATE INDEX topic_preferences_contact ON topic_preferences (contact_id, topic_id, id);

ALTER TABLE campaigns ADD COLUMN topic_id BIGINT
"#;

const DOWN: &str = r#"
ALTER TABLE campaigns DROP COLUMN topic_id;
DROP TABLE topic_preferences;
DROP TABLE email_topics
"#;
