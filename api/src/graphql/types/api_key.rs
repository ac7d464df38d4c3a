//! API keys (never their secrets).

use super::*;

/// An API key (the secret itself is never shown again after creation).
pub struct ApiKey(pub s::api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public part of the key, `rk_<prefix>_...`.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn scopes(&self) -> Vec<Scope> {
        self.0
            .scopes
            .split(',')
            .filter_map(|s| rapport_engine::values::Scope::parse("scopes", s).ok())
            .map(Scope::from)
            .collect()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}
