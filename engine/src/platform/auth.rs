//! API keys: creating, checking and revoking them.
//!
//! A key looks like `rk_<prefix>_<secret>`. The prefix is stored in clear to find the row;
//! only a SHA-256 of the whole key is stored, so a database leak does not leak keys. A
//! fast hash is enough here because the secret has 192 random bits: there is nothing to
//! brute-force that a slow hash would protect.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::values::{Scope, Text};
use rand::RngCore;
use rapport_schema::api_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, Set,
};
use sha2::{Digest, Sha256};

/// Who is calling: the workspace every query is scoped to and what the key may do.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The workspace the key belongs to.
    pub workspace_id: i64,
    /// The key's row id, recorded as the actor of changes.
    pub key_id: Option<i64>,
    /// The person signed in to the console, when the caller is a session rather than a key.
    pub user_id: Option<i64>,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// A member's session: changes reach only records the person owns or nobody owns.
    pub owner_bound: bool,
}

impl Principal {
    /// A principal with every scope, for the command line acting on a workspace it created.
    pub fn owner(workspace_id: i64) -> Self {
        Self {
            workspace_id,
            key_id: None,
            user_id: None,
            scopes: Scope::ALL.to_vec(),
            owner_bound: false,
        }
    }

    /// The server acting on its own in `workspace_id` with only `scope`, for work set off
    /// by someone without an API key (a visitor sending a sign-up form); recorded with no
    /// key as its actor.
    pub fn acting_for(workspace_id: i64, scope: Scope) -> Self {
        Self {
            workspace_id,
            key_id: None,
            user_id: None,
            scopes: vec![scope],
            owner_bound: false,
        }
    }

    /// Whether the key carries `scope`; `admin` implies `write`, and `write` implies `read`.
    pub fn can(&self, scope: Scope) -> bool {
        let rank = |s: &Scope| match s {
            Scope::Read => 0,
            Scope::Write => 1,
            Scope::Admin => 2,
        };
        self.scopes.iter().any(|s| rank(s) >= rank(&scope))
    }

    /// Fails with `Forbidden` unless the caller may change a record owned by `owner_id`:
    /// a member changes only their own records and those nobody owns.
    pub fn require_owner(&self, owner_id: Option<i64>) -> Result<()> {
        self.require(Scope::Write)?;
        match (self.owner_bound, owner_id) {
            (true, Some(owner)) if Some(owner) != self.user_id => Err(EngineError::Forbidden(
                "a member changes only the records they own or nobody owns".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Fails with `Forbidden` unless the caller may change the workspace's structure
    /// (pipelines, stages, teams): write scope, and not a member.
    pub fn require_manager(&self) -> Result<()> {
        self.require(Scope::Write)?;
        if self.owner_bound {
            return Err(EngineError::Forbidden(
                "pipelines, stages and teams are changed by managers and admins".into(),
            ));
        }
        Ok(())
    }

    /// Fails with `Forbidden` unless the key carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(EngineError::Forbidden(if self.user_id.is_some() {
                format!("your role does not allow this (it needs '{scope}')")
            } else {
                format!("this API key lacks the '{scope}' scope")
            }))
        }
    }
}

/// A key just created: the row and the only copy of the secret there will ever be.
pub struct IssuedKey {
    /// The stored row.
    pub record: api_key::Model,
    /// The whole key, to hand to the user once.
    pub key: String,
}

/// Parses a comma-separated scope list such as `read,write`.
pub fn parse_scopes(field: &str, raw: &str) -> Result<Vec<Scope>> {
    let mut scopes = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let s = Scope::parse(field, part)?;
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    if scopes.is_empty() {
        return Err(EngineError::invalid(
            field,
            "at least one scope is needed (read, write, admin)",
        ));
    }
    Ok(scopes)
}

/// A secret key shaped `<kind>_<prefix>_<secret>` (`rk` for API keys, `pk` for ingest
/// keys): the prefix, stored in clear to find the row, and the whole key, of which only
/// [`secret_hash`] is stored.
pub fn new_secret(kind: &str) -> (String, String) {
    let prefix = random_hex(6);
    let key = format!("{kind}_{prefix}_{}", random_hex(24));
    (prefix, key)
}

/// The prefix of a presented key of `kind`; `None` when it is not shaped like one, or too
/// long to be worth hashing.
pub fn prefix_of<'a>(kind: &str, presented: &'a str) -> Option<&'a str> {
    if presented.len() > 256 {
        return None;
    }
    presented
        .strip_prefix(kind)?
        .strip_prefix('_')?
        .split_once('_')
        .map(|(p, _)| p)
}

/// The hash stored for a key: hex SHA-256 (a fast hash is enough for 192 random bits).
pub fn secret_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a presented key is the one whose hash is `stored`, compared in constant time.
pub fn secret_matches(presented: &str, stored: &str) -> bool {
    constant_time_eq(secret_hash(presented).as_bytes(), stored.as_bytes())
}

/// `bytes` random bytes from the OS-seeded generator, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a key for `workspace_id` with `scopes`.
pub async fn create_key(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
    scopes: &[Scope],
) -> Result<IssuedKey> {
    create_key_by(db, workspace_id, name, scopes, None).await
}

/// Creates a key made by a person (`created_by`), whose removal revokes it.
pub async fn create_key_by(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
    scopes: &[Scope],
    created_by: Option<i64>,
) -> Result<IssuedKey> {
    let name = Text::parse("name", name, 100)?.into_string();
    if scopes.is_empty() {
        return Err(EngineError::invalid(
            "scopes",
            "at least one scope is needed (read, write, admin)",
        ));
    }
    let (prefix, key) = new_secret("rk");
    let record = api_key::ActiveModel {
        workspace_id: Set(workspace_id),
        name: Set(name),
        prefix: Set(prefix),
        hash: Set(secret_hash(&key)),
        scopes: Set(scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(",")),
        created_at: Set(clock::now()),
        created_by_user_id: Set(created_by),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(IssuedKey { record, key })
}

/// Revokes every live key a person made (they were removed, or are no longer an admin);
/// returns how many.
pub async fn revoke_keys_of(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    user_id: i64,
) -> Result<u64> {
    Ok(api_key::Entity::update_many()
        .col_expr(
            api_key::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(clock::now()),
        )
        .filter(api_key::Column::WorkspaceId.eq(workspace_id))
        .filter(api_key::Column::CreatedByUserId.eq(user_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// Checks a presented key; `None` when it is unknown, malformed or revoked.
///
/// Only reads: a request that only reads must not wait for (or fail on) a write lock.
/// Whether `last_used_at` is due for an update is in [`Authenticated::stale_use`]; the
/// caller records it off the request path with [`touch`].
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &str,
) -> Result<Option<Authenticated>> {
    let Some(prefix) = prefix_of("rk", presented) else {
        return Ok(None);
    };
    let Some(row) = api_key::Entity::find()
        .filter(api_key::Column::Prefix.eq(prefix))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.revoked_at.is_some() || !secret_matches(presented, &row.hash) {
        return Ok(None);
    }
    let stale_use = row
        .last_used_at
        .is_none_or(|t| clock::now() - t > chrono::Duration::seconds(60));
    let scopes = row
        .scopes
        .split(',')
        .filter_map(|s| Scope::parse("scopes", s).ok())
        .collect();
    Ok(Some(Authenticated {
        principal: Principal {
            workspace_id: row.workspace_id,
            key_id: Some(row.id),
            user_id: None,
            scopes,
            owner_bound: false,
        },
        stale_use,
    }))
}

/// A key that checked out.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// Who presented it.
    pub principal: Principal,
    /// `last_used_at` is more than a minute old (written at most once a minute per key,
    /// so reads do not turn into writes under load).
    pub stale_use: bool,
}

/// Records that a key was just used.
pub async fn touch(db: &impl ConnectionTrait, key_id: i64) -> Result<()> {
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::LastUsedAt,
            sea_orm::sea_query::Expr::value(clock::now()),
        )
        .filter(api_key::Column::Id.eq(key_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The workspace's keys, newest first (hashes included; callers show only the prefix).
pub async fn list_keys(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<api_key::Model>> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// Revokes a key of the workspace, by id or by prefix. Revoking twice is harmless.
pub async fn revoke_key(
    db: &impl ConnectionTrait,
    workspace_id: Option<i64>,
    id_or_prefix: &str,
) -> Result<api_key::Model> {
    // A hex prefix can be all digits, so a number is tried as a prefix first and only then as an id.
    let prefix = id_or_prefix.trim_start_matches("rk_");
    let mut by = api_key::Column::Prefix.eq(prefix);
    if let Ok(id) = id_or_prefix.parse::<i64>() {
        by = by.or(api_key::Column::Id.eq(id));
    }
    let mut query = api_key::Entity::find().filter(by);
    if let Some(ws) = workspace_id {
        query = query.filter(api_key::Column::WorkspaceId.eq(ws));
    }
    let rows = query.all(db).await?;
    let row = rows
        .iter()
        .find(|k| k.prefix == prefix)
        .or(rows.first())
        .cloned()
        .ok_or_else(|| EngineError::not_found("ApiKey", id_or_prefix))?;
    if row.revoked_at.is_some() {
        return Ok(row);
    }
    let mut active: api_key::ActiveModel = row.into();
    active.revoked_at = Set(Some(clock::now()));
    Ok(active.update(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_kind_are_found_only_as_that_kind() {
        let (prefix, key) = new_secret("pk");
        assert_eq!(prefix_of("pk", &key), Some(prefix.as_str()));
        assert_eq!(
            prefix_of("rk", &key),
            None,
            "an ingest key is not an API key"
        );
        assert_eq!(prefix_of("pk", "pk_nounderscore"), None);
        assert_eq!(prefix_of("pk", &format!("pk_a_{}", "x".repeat(300))), None);
        assert!(secret_matches(&key, &secret_hash(&key)));
        assert!(!secret_matches(&format!("{key}0"), &secret_hash(&key)));
    }

    #[test]
    fn scopes_imply_lower_ones() {
        let admin = Principal::owner(1);
        assert!(admin.can(Scope::Read) && admin.can(Scope::Write));
        let read = Principal::acting_for(1, Scope::Read);
        assert!(read.can(Scope::Read) && !read.can(Scope::Write));
        assert!(parse_scopes("s", "read, write").unwrap().len() == 2);
        assert!(parse_scopes("s", "").is_err());
        assert!(parse_scopes("s", "root").is_err());
    }
}
