//! Campaign sending shared by every worker: the next free send slot of a rate-limited
//! campaign, so batches running side by side (or taken over from a dead worker) hold the
//! campaign's rate together instead of each pacing itself from its own start; and which
//! worker claimed a message, so the claims of a worker known dead (its heartbeats stopped)
//! are settled at once instead of after the claim timeout.
crate::script_migration!("m0011_send_pacing");

// Microseconds since the Unix epoch, so SQLite and PostgreSQL compare and add it alike.
const UP: &str = r#"
ALTER TABLE campaigns ADD COLUMN next_send_us BIGINT;
ALTER TABLE campaign_messages ADD COLUMN claimed_by {text}
"#;

const DOWN: &str = r#"
ALTER TABLE campaign_messages DROP COLUMN claimed_by;
ALTER TABLE campaigns DROP COLUMN next_send_us
"#;
