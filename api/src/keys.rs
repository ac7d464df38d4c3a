//! Recently verified API keys, so a busy client does not cost a key lookup per request.
//!
//! A verified key is trusted for a short time (5 s by default). Revoking a key through
//! this process's API forgets every cached key at once; a revocation made by another
//! process (the CLI, another server) takes effect within the time-to-live.

use rapport_engine::EngineError;
use rapport_engine::platform::auth::{self, Principal};
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many distinct keys the cache starts over rather than grow without bound.
const MAX_ENTRIES: usize = 10_000;

/// Keys verified within the last `ttl`.
pub struct VerifiedKeys {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl VerifiedKeys {
    /// A cache trusting a verification for `ttl` (zero: verify every request).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The principal of a presented key, from the cache or the database.
    pub async fn principal(
        &self,
        db: &DatabaseConnection,
        presented: &str,
    ) -> Result<Option<Principal>, EngineError> {
        if !self.ttl.is_zero()
            && let Some((p, at)) = self.entries.lock().expect("key cache").get(presented)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(p.clone()));
        }
        let found = match auth::authenticate(db, presented).await? {
            Some(a) => {
                if a.stale_use
                    && let Some(key_id) = a.principal.key_id
                {
                    // Off the request path: a write lock held elsewhere delays only this.
                    let db = db.clone();
                    tokio::spawn(async move {
                        if let Err(e) = auth::touch(&db, key_id).await {
                            tracing::warn!(error = %e, key_id, "recording a key's last use failed");
                        }
                    });
                }
                Some(a.principal)
            }
            None => None,
        };
        let mut entries = self.entries.lock().expect("key cache");
        match &found {
            Some(p) if !self.ttl.is_zero() => {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(presented.to_string(), (p.clone(), Instant::now()));
            }
            _ => {
                entries.remove(presented);
            }
        }
        Ok(found)
    }

    /// Forgets every verification (after a key is revoked).
    pub fn forget_all(&self) {
        self.entries.lock().expect("key cache").clear();
    }
}
