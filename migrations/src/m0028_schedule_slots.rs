//! Periodic work shared by every process on one database: one row per kind of work (the
//! model schedule's change scan, full rescore and retraining) says when it is next due and
//! who holds it now. A process takes a due row with one conditional update, so of several
//! `serve` processes exactly one does each run; a holder that dies loses its lease and the
//! next process takes the work over.
crate::script_migration!("m0028_schedule_slots");

const UP: &str = r#"
CREATE TABLE schedule_slots (
    work {text} NOT NULL PRIMARY KEY,
    due_at {ts} NOT NULL,
    covered_until {ts},
    holder {text},
    lease_until {ts},
    done_at {ts},
    runs BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    last_error {text}
)
"#;

const DOWN: &str = r#"
DROP TABLE schedule_slots
"#;
