//! Idempotency keys: a client that retries a create (its connection dropped, it timed
//! out) sends the same `Idempotency-Key` and gets the first answer back instead of a
//! second row (the IETF `Idempotency-Key` header draft, as Stripe does it).
//!
//! The key is claimed by inserting its row before the work runs, so two copies of one
//! request racing each other cannot both run: the second sees the first in flight. A
//! retry must ask exactly what the first asked (same fingerprint); anything else reusing
//! the key is refused. Keys belong to their caller (one API key, one ingest key): another
//! caller's same key is another key, and never sees the first one's answer. Keys are
//! forgotten after [`RETENTION_HOURS`].

use crate::clock;
use crate::error::{EngineError, Result};
use rapport_schema::idempotency_key;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use sha2::{Digest, Sha256};

/// How long an answer is kept for retries.
pub const RETENTION_HOURS: i64 = 24;

/// How long a first request may stay unanswered before its key is presumed abandoned
/// (the process died mid-request) and a retry may run: longer than any request may run.
pub const ABANDONED_AFTER_MINUTES: i64 = 10;

/// A client's idempotency key: 1 to 255 visible ASCII characters (a UUID, typically).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// Parses the header's value.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        // The draft allows a structured-field string in quotes; both spellings are one key.
        let key = raw.trim();
        let key = key
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .unwrap_or(key);
        if key.is_empty() || key.len() > Self::MAX_LEN || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(EngineError::invalid(
                field,
                format!(
                    "must be 1 to {} visible ASCII characters, such as a UUID",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(key.to_string()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The fingerprint of a request: what a retry must repeat exactly.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Lengths first, so ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A claimed key: its row and the moment of the claim, which only this request holds
/// (a retry that took an abandoned key over holds a later one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    id: i64,
    at: chrono::DateTime<chrono::Utc>,
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claimed {
    /// The key is new: run the request, then [`complete`] (or [`release`]) the claim.
    Fresh(Claim),
    /// The request ran before: its answer, to send again.
    Replay(String),
    /// The first request with this key is still running.
    InFlight,
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` of `caller` (`key:12`, `ingest:3`: who sent it) for a request with
/// `fingerprint` in workspace `ws`.
pub async fn claim(
    db: &impl ConnectionTrait,
    ws: i64,
    caller: &str,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Claimed> {
    let now = clock::now();
    // A key cannot hold a space, so "<caller> <key>" cannot collide across callers.
    let stored = format!("{caller} {}", key.as_str());
    // Forgotten keys go first (the workspace's expired ones: bounded by a day of keys),
    // so an expired key is free again.
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::WorkspaceId.eq(ws))
        .filter(
            idempotency_key::Column::CreatedAt.lt(now - chrono::Duration::hours(RETENTION_HOURS)),
        )
        .exec(db)
        .await?;
    let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        workspace_id: Set(ws),
        key: Set(stored.clone()),
        fingerprint: Set(fingerprint.to_string()),
        response: Set(None),
        created_at: Set(now),
        completed_at: Set(None),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            idempotency_key::Column::WorkspaceId,
            idempotency_key::Column::Key,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    let row = idempotency_key::Entity::find()
        .filter(idempotency_key::Column::WorkspaceId.eq(ws))
        .filter(idempotency_key::Column::Key.eq(stored.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::internal("an idempotency key vanished as it was claimed"))?;
    if inserted == 1 {
        return Ok(Claimed::Fresh(Claim {
            id: row.id,
            at: row.created_at,
        }));
    }
    if row.fingerprint != fingerprint {
        return Ok(Claimed::Mismatch);
    }
    if let Some(response) = row.response {
        return Ok(Claimed::Replay(response));
    }
    if now - row.created_at < chrono::Duration::minutes(ABANDONED_AFTER_MINUTES) {
        return Ok(Claimed::InFlight);
    }
    // The first request died without an answer: this retry takes the key over, unless
    // another retry just did.
    let taken = idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(idempotency_key::Column::Id.eq(row.id))
        .filter(idempotency_key::Column::CreatedAt.eq(row.created_at))
        .filter(idempotency_key::Column::Response.is_null())
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        Claimed::Fresh(Claim {
            id: row.id,
            at: now,
        })
    } else {
        Claimed::InFlight
    })
}

/// Keeps the answer of the request that holds `claim`, for its retries (unless a retry
/// took the key over meanwhile).
pub async fn complete(db: &impl ConnectionTrait, claim: Claim, response: &str) -> Result<()> {
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::Response,
            sea_orm::sea_query::Expr::value(response.to_string()),
        )
        .col_expr(
            idempotency_key::Column::CompletedAt,
            sea_orm::sea_query::Expr::value(clock::now()),
        )
        .filter(idempotency_key::Column::Id.eq(claim.id))
        .filter(idempotency_key::Column::CreatedAt.eq(claim.at))
        .filter(idempotency_key::Column::Response.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Gives the key of `claim` back: the request failed on our side before it changed
/// anything, and a retry should run it again rather than see the failure. A retry that
/// took the key over keeps it.
pub async fn release(db: &impl ConnectionTrait, claim: Claim) -> Result<()> {
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::Id.eq(claim.id))
        .filter(idempotency_key::Column::CreatedAt.eq(claim.at))
        .filter(idempotency_key::Column::Response.is_null())
        .exec(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("k", "8e0f6b3c-1d2a-4c5e-9f00-1234567890ab").is_ok());
        assert_eq!(
            IdempotencyKey::parse("k", "\"abc\"").unwrap().as_str(),
            "abc"
        );
        assert!(IdempotencyKey::parse("k", "").is_err());
        assert!(IdempotencyKey::parse("k", "a b").is_err());
        assert!(IdempotencyKey::parse("k", "é").is_err());
        assert!(IdempotencyKey::parse("k", &"a".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["q", "{}"]), fingerprint(&["q", "{}"]));
    }
}
