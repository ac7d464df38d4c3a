//! What each API key may spend per second, in the complexity units of
//! [`super::MAX_COMPLEXITY`]: one request is capped at that, and a key's requests together
//! draw from a bucket that refills at `per_second`, so no one key can keep the server
//! busy with expensive reads while others wait. Refused requests answer `RATE_LIMITED`
//! before anything runs.

use crate::rate_limit::Buckets;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextValidation};
use async_graphql::{ErrorExtensionValues, ServerError, ValidationResult};
use rapport_engine::platform::auth::Principal;
use std::sync::Arc;

/// Per-key buckets of complexity; the schema's extension (cheap to clone).
#[derive(Clone)]
pub struct CostBudget(Arc<Buckets<KeyId>>);

/// Whose budget: the workspace and the key (none for the command line's owner).
type KeyId = (i64, Option<i64>);

impl CostBudget {
    /// A budget refilling at `per_second` units, holding at most `burst`.
    pub fn new(per_second: u64, burst: u64) -> Self {
        Self(Arc::new(Buckets::new(per_second as f64, burst as f64)))
    }

    /// Takes `cost` from the bucket of `key`; false when it does not hold that much.
    pub fn spend(&self, key: KeyId, cost: usize) -> bool {
        self.take(key, cost)
    }

    fn take(&self, key: KeyId, cost: usize) -> bool {
        self.0.take(key, cost as f64).is_ok()
    }
}

impl ExtensionFactory for CostBudget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Spend(self.clone()))
    }
}

/// Marks a request whose complexity its key's budget has paid already (a planned
/// request that the schema answers after all): the schema does not charge it again.
#[derive(Clone, Copy, Debug)]
pub struct Paid;

struct Spend(CostBudget);

#[async_graphql::async_trait::async_trait]
impl Extension for Spend {
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if ctx.data_opt::<Paid>().is_none()
            && let Some(who) = ctx.data_opt::<Principal>()
            && !self
                .0
                .take((who.workspace_id, who.key_id), result.complexity)
        {
            let mut e = ServerError::new(
                format!(
                    "this API key has spent its query budget ({} per second); wait a moment or ask for less",
                    self.0.0.per_second() as u64
                ),
                None,
            );
            let mut ext = ErrorExtensionValues::default();
            ext.set("code", crate::error::code::RATE_LIMITED);
            e.extensions = Some(ext);
            return Err(vec![e]);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_spends_its_burst_then_waits_for_the_refill() {
        let budget = CostBudget::new(1_000, 5_000);
        let key = (1, Some(7));
        assert!(budget.take(key, 4_000));
        assert!(!budget.take(key, 4_000), "the burst is spent");
        // Another key has its own bucket.
        assert!(budget.take((1, Some(8)), 4_000));
        std::thread::sleep(std::time::Duration::from_millis(50));
        // 50 ms at 1,000 a second: about 50 more, not 4,000.
        assert!(!budget.take(key, 4_000));
        assert!(budget.take(key, 1_000));
    }
}
