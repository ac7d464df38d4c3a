//! The suppression list: addresses no marketing email may ever go to (hard bounces,
//! complaints, erased people, manual entries).
//!
//! Entries are keyed by a SHA-256 of the normalised address, so suppressing an erased
//! person keeps no trace of who they were, and a re-import of the same address is still
//! caught.

use rapport_schema::suppression;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::clock;
use crate::error::Result;
use crate::platform::auth::Principal;
use crate::values::{EmailAddress, Scope, SuppressionReason, Text};

/// The key an address is suppressed under.
pub fn email_hash(email: &EmailAddress) -> String {
    rapport_schema::contact::email_hash(email.as_str())
}

/// Suppresses an address (write scope). Suppressing it again keeps the first entry.
pub async fn suppress(
    db: &impl ConnectionTrait,
    who: &Principal,
    email: &EmailAddress,
    reason: SuppressionReason,
    note: Option<&str>,
) -> Result<suppression::Model> {
    who.require(Scope::Write)?;
    let note = Text::parse_multiline_opt("note", note, 500)?.map(Text::into_string);
    add(db, who.workspace_id, &email_hash(email), reason, note).await
}

/// Adds an entry by hash (for erasure, where only the hash may remain).
pub async fn add(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    hash: &str,
    reason: SuppressionReason,
    note: Option<String>,
) -> Result<suppression::Model> {
    suppression::Entity::insert(suppression::ActiveModel {
        workspace_id: Set(workspace_id),
        email_hash: Set(hash.to_string()),
        reason: Set(reason.as_str().to_string()),
        note: Set(note),
        created_at: Set(clock::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            suppression::Column::WorkspaceId,
            suppression::Column::EmailHash,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(find(db, workspace_id, hash)
        .await?
        .expect("the entry was just written"))
}

async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    hash: &str,
) -> Result<Option<suppression::Model>> {
    Ok(suppression::Entity::find()
        .filter(suppression::Column::WorkspaceId.eq(workspace_id))
        .filter(suppression::Column::EmailHash.eq(hash))
        .one(db)
        .await?)
}

/// The entry suppressing an address, if any.
pub async fn lookup(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    email: &EmailAddress,
) -> Result<Option<suppression::Model>> {
    find(db, workspace_id, &email_hash(email)).await
}

/// Lifts a suppression. Manual entries need write scope; bounces, complaints and
/// erasures need admin, because lifting them is how a person who objected gets mail again.
pub async fn lift(
    db: &impl ConnectionTrait,
    who: &Principal,
    email: &EmailAddress,
) -> Result<bool> {
    who.require(Scope::Write)?;
    let Some(entry) = lookup(db, who.workspace_id, email).await? else {
        return Ok(false);
    };
    if SuppressionReason::from_db(&entry.reason) != SuppressionReason::Manual {
        who.require(Scope::Admin)?;
    }
    suppression::Entity::delete_by_id(entry.id).exec(db).await?;
    Ok(true)
}

/// The newest entries first, at most `limit`.
pub async fn recent(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    limit: u64,
) -> Result<Vec<suppression::Model>> {
    Ok(suppression::Entity::find()
        .filter(suppression::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(suppression::Column::CreatedAt)
        .order_by_desc(suppression::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_case_and_spaces() {
        let a = EmailAddress::parse("email", " Ada@Example.com").unwrap();
        let b = EmailAddress::parse("email", "ada@example.com").unwrap();
        assert_eq!(email_hash(&a), email_hash(&b));
        assert_eq!(email_hash(&a).len(), 64);
    }
}
