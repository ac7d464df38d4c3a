//! The current time, as the database stores it.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds: PostgreSQL keeps no more, and a value that survives
/// the round trip unchanged keeps cursors and comparisons exact on both databases.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
