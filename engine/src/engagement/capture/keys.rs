//! Ingest keys: the publishable keys a website embeds in its pages to capture leads.
//!
//! A key looks like `pk_<prefix>_<secret>`. Anyone who views the page can read it, so it
//! buys nothing but what [`super`] allows (identify or create a contact by email, track
//! its events, ask for double opt-in) and only from the web origins it names: a browser
//! always sends `Origin`, and the server refuses any other before it does any work.
//! Stored like API keys (prefix in clear, SHA-256 of the whole key), and never the same
//! kind of token: an API key is not an ingest key, nor the other way round.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::{self, Principal};
use crate::values::{Scope, Text, excerpt};
use rapport_schema::{ingest_key, ingest_key_origin};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

/// Origins one key may name.
pub const MAX_ORIGINS: usize = 20;

/// A web origin as browsers send it in `Origin`: `https://shop.example` or
/// `http://localhost:3000` — scheme, host and port, nothing else, lowercase.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WebOrigin(String);

impl WebOrigin {
    /// Parses an origin; a path, query, user or the opaque origin `null` is refused.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let origin = raw.trim().to_ascii_lowercase();
        let refuse = || {
            EngineError::invalid(
                field,
                format!(
                    "'{}' is not a web origin such as https://shop.example (scheme, host and \
                     port only)",
                    excerpt(raw)
                ),
            )
        };
        let (scheme, rest) = origin.split_once("://").ok_or_else(refuse)?;
        if !matches!(scheme, "http" | "https") || rest.is_empty() || origin.len() > 300 {
            return Err(refuse());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
        if !host_ok || !port_ok {
            return Err(refuse());
        }
        // Browsers leave the scheme's own port out; so does the stored form.
        let origin = match (scheme, port) {
            ("http", Some("80")) | ("https", Some("443")) => format!("{scheme}://{host}"),
            _ => origin,
        };
        Ok(Self(origin))
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key just created: the row, its origins, and the key itself.
pub struct IssuedIngestKey {
    /// The stored row.
    pub record: ingest_key::Model,
    /// Where it may be used from.
    pub origins: Vec<String>,
    /// The whole key, shown once (it is publishable, but only its hash is kept).
    pub key: String,
}

fn parse_origins(raw: &[String]) -> Result<Vec<WebOrigin>> {
    if raw.is_empty() || raw.len() > MAX_ORIGINS {
        return Err(EngineError::invalid(
            "allowedOrigins",
            format!("name 1 to {MAX_ORIGINS} web origins the key may be used from"),
        ));
    }
    let mut out: Vec<WebOrigin> = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let o = WebOrigin::parse(&format!("allowedOrigins[{i}]"), o)?;
        if !out.contains(&o) {
            out.push(o);
        }
    }
    Ok(out)
}

/// Creates an ingest key usable from `origins` (admin scope: it lets strangers add
/// contacts to the workspace).
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
    origins: &[String],
) -> Result<IssuedIngestKey> {
    who.require(Scope::Admin)?;
    let name = Text::parse("name", name, 100)?.into_string();
    let origins = parse_origins(origins)?;
    let (prefix, key) = auth::new_secret("pk");
    let tx = crate::platform::db::write(db).await?;
    let record = ingest_key::ActiveModel {
        workspace_id: Set(who.workspace_id),
        name: Set(name),
        prefix: Set(prefix),
        hash: Set(auth::secret_hash(&key)),
        created_at: Set(clock::now()),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    for o in &origins {
        ingest_key_origin::ActiveModel {
            ingest_key_id: Set(record.id),
            origin: Set(o.as_str().to_string()),
            ..Default::default()
        }
        .insert(&tx)
        .await?;
    }
    tx.commit().await?;
    Ok(IssuedIngestKey {
        record,
        origins: origins.into_iter().map(|o| o.0).collect(),
        key,
    })
}

/// The workspace's ingest keys, newest first, each with its origins (admin scope).
pub async fn list(
    db: &impl ConnectionTrait,
    who: &Principal,
) -> Result<Vec<(ingest_key::Model, Vec<String>)>> {
    who.require(Scope::Admin)?;
    let keys = ingest_key::Entity::find()
        .filter(ingest_key::Column::WorkspaceId.eq(who.workspace_id))
        .order_by_desc(ingest_key::Column::Id)
        .limit(500)
        .all(db)
        .await?;
    let ids: Vec<i64> = keys.iter().map(|k| k.id).collect();
    let mut origins = ingest_key_origin::Entity::find()
        .filter(ingest_key_origin::Column::IngestKeyId.is_in(ids))
        .order_by_asc(ingest_key_origin::Column::Id)
        .all(db)
        .await?;
    Ok(keys
        .into_iter()
        .map(|k| {
            let mine = origins
                .extract_if(.., |o| o.ingest_key_id == k.id)
                .map(|o| o.origin)
                .collect();
            (k, mine)
        })
        .collect())
}

/// Revokes key `id` (admin scope); returns whether it was live.
pub async fn revoke(db: &impl ConnectionTrait, who: &Principal, id: i64) -> Result<bool> {
    who.require(Scope::Admin)?;
    let done = ingest_key::Entity::update_many()
        .col_expr(
            ingest_key::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(clock::now()),
        )
        .filter(ingest_key::Column::Id.eq(id))
        .filter(ingest_key::Column::WorkspaceId.eq(who.workspace_id))
        .filter(ingest_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// A presented ingest key that checked out.
#[derive(Clone, Debug)]
pub struct IngestCaller {
    /// The key's workspace.
    pub workspace_id: i64,
    /// The key's row.
    pub key_id: i64,
    /// Its name, recorded as the source of what it captures.
    pub name: String,
    /// Whether the request's origin is one of the key's.
    pub origin_allowed: bool,
}

/// Checks a presented ingest key and the request's `origin`; `None` when the key is
/// unknown, malformed or revoked. Reads only.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &str,
    origin: Option<&WebOrigin>,
) -> Result<Option<IngestCaller>> {
    let Some(prefix) = auth::prefix_of("pk", presented) else {
        return Ok(None);
    };
    let Some(row) = ingest_key::Entity::find()
        .filter(ingest_key::Column::Prefix.eq(prefix))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if row.revoked_at.is_some() || !auth::secret_matches(presented, &row.hash) {
        return Ok(None);
    }
    let origin_allowed = match origin {
        None => false,
        Some(o) => ingest_key_origin::Entity::find()
            .filter(ingest_key_origin::Column::IngestKeyId.eq(row.id))
            .filter(ingest_key_origin::Column::Origin.eq(o.as_str()))
            .one(db)
            .await?
            .is_some(),
    };
    Ok(Some(IngestCaller {
        workspace_id: row.workspace_id,
        key_id: row.id,
        name: row.name,
        origin_allowed,
    }))
}

/// Keys looked at for one origin in a preflight (an origin named by more keys than this,
/// all revoked but the last, is not worth serving).
const MAX_KEYS_PER_ORIGIN: u64 = 1000;

/// Whether any live ingest key may be used from `origin`: what a CORS preflight, which
/// carries no key, can be told.
pub async fn origin_known(db: &impl ConnectionTrait, origin: &WebOrigin) -> Result<bool> {
    let keys: Vec<i64> = ingest_key_origin::Entity::find()
        .filter(ingest_key_origin::Column::Origin.eq(origin.as_str()))
        .limit(MAX_KEYS_PER_ORIGIN)
        .all(db)
        .await?
        .into_iter()
        .map(|o| o.ingest_key_id)
        .collect();
    if keys.is_empty() {
        return Ok(false);
    }
    let live = ingest_key::Entity::find()
        .filter(ingest_key::Column::Id.is_in(keys))
        .filter(ingest_key::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    Ok(live.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port() {
        let ok = |s: &str| WebOrigin::parse("o", s).map(|o| o.0);
        assert_eq!(ok("https://Shop.Example").unwrap(), "https://shop.example");
        assert_eq!(
            ok("https://shop.example:443").unwrap(),
            "https://shop.example"
        );
        assert_eq!(
            ok("http://localhost:3000").unwrap(),
            "http://localhost:3000"
        );
        assert_eq!(ok("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        for bad in [
            "null",
            "shop.example",
            "ftp://shop.example",
            "https://shop.example/",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://shop.example:0",
            "https://shop.example:99999",
            "https://",
        ] {
            assert!(ok(bad).is_err(), "{bad} should be refused");
        }
    }
}
