//! Finding contacts that are the same person, and merging them.

use crate::clock;
use crate::crm::contacts::replace_tags;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records::{self, Deleted};
use crate::values::{Tag, json_strings};
use rapport_schema::{activity, contact, contact_merge, deal, event, inquiry, order, task};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    Set,
};
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

/// Why contacts were grouped as likely duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DuplicateReason {
    /// One contact's address is another's (primary or further) address.
    SameEmail,
    /// The same phone number once normalised.
    SamePhone,
    /// Nearly the same name at the same company.
    SimilarName,
}

/// Contacts that are probably one person.
#[derive(Clone, Debug)]
pub struct DuplicateGroup {
    /// What they share.
    pub reason: DuplicateReason,
    /// Their ids, ascending.
    pub contact_ids: Vec<i64>,
}

/// Names compared without case, accents on ASCII letters' neighbours, or punctuation.
fn normalized_name(c: &contact::Model) -> String {
    format!("{} {}", c.first_name, c.last_name)
        .to_lowercase()
        .chars()
        .filter(|ch| ch.is_alphanumeric() || ch.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Edit distance, for "Jon Smith" versus "John Smith".
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

fn similar(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    // Short names need an exact match, or "Al Li" would match "Bo Li".
    let allowed = if a.len().min(b.len()) >= 8 {
        2
    } else if a.len().min(b.len()) >= 5 {
        1
    } else {
        0
    };
    levenshtein(a, b) <= allowed
}

/// Groups of likely duplicates in the workspace; with `contact_id`, only the groups that
/// contain that contact. At most `limit` groups.
pub async fn find(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: Option<i64>,
    limit: usize,
) -> Result<Vec<DuplicateGroup>> {
    let ws = who.workspace_id;
    if let Some(id) = contact_id {
        records::get::<contact::Entity>(db, ws, id).await?;
    }
    let all = records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .all(db)
        .await?;
    // Comparing names is CPU work that grows with the square of a company's size: it runs
    // on the blocking pool, not on a thread that serves requests.
    tokio::task::spawn_blocking(move || groups_of(&all, contact_id, limit))
        .await
        .map_err(|e| crate::EngineError::internal(format!("finding duplicates panicked: {e}")))
}

/// Contacts of one company compared pairwise by name, at most: past this, the names of
/// that company are not compared (emails and phones still are).
const MAX_COMPANY_CONTACTS_COMPARED: usize = 2_000;

fn groups_of(all: &[contact::Model], contact_id: Option<i64>, limit: usize) -> Vec<DuplicateGroup> {
    let mut groups: BTreeSet<(DuplicateReason, Vec<i64>)> = BTreeSet::new();

    let mut by_email: HashMap<String, BTreeSet<i64>> = HashMap::new();
    let mut by_phone: HashMap<&str, BTreeSet<i64>> = HashMap::new();
    let mut by_company: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for c in all {
        let others = c
            .other_emails
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str());
        for e in c.email.as_deref().into_iter().chain(others) {
            by_email.entry(e.to_lowercase()).or_default().insert(c.id);
        }
        if let Some(p) = c.phone_normalized.as_deref() {
            by_phone.entry(p).or_default().insert(c.id);
        }
        if let Some(company) = c.company_id {
            by_company
                .entry(company)
                .or_default()
                .push((c.id, normalized_name(c)));
        }
    }
    for ids in by_email.into_values().filter(|s| s.len() > 1) {
        groups.insert((DuplicateReason::SameEmail, ids.into_iter().collect()));
    }
    for ids in by_phone.into_values().filter(|s| s.len() > 1) {
        groups.insert((DuplicateReason::SamePhone, ids.into_iter().collect()));
    }
    for people in by_company.into_values() {
        if people.len() > MAX_COMPANY_CONTACTS_COMPARED {
            tracing::warn!(
                contacts = people.len(),
                "a company too large to compare its contacts' names pairwise"
            );
            continue;
        }
        // Union the similar pairs into groups within one company.
        let mut group_of: Vec<usize> = (0..people.len()).collect();
        // Iterative (path halving): a long chain of unions must not recurse as deep.
        fn root(g: &mut [usize], mut i: usize) -> usize {
            while g[i] != i {
                g[i] = g[g[i]];
                i = g[i];
            }
            i
        }
        for i in 0..people.len() {
            for j in i + 1..people.len() {
                if similar(&people[i].1, &people[j].1) {
                    let (a, b) = (root(&mut group_of, i), root(&mut group_of, j));
                    group_of[a] = b;
                }
            }
        }
        let mut sets: HashMap<usize, Vec<i64>> = HashMap::new();
        for (i, (id, _)) in people.iter().enumerate() {
            let r = root(&mut group_of, i);
            sets.entry(r).or_default().push(*id);
        }
        for mut ids in sets.into_values().filter(|v| v.len() > 1) {
            ids.sort_unstable();
            groups.insert((DuplicateReason::SimilarName, ids));
        }
    }
    groups
        .into_iter()
        .filter(|(_, ids)| contact_id.is_none_or(|id| ids.contains(&id)))
        .take(limit)
        .map(|(reason, contact_ids)| DuplicateGroup {
            reason,
            contact_ids,
        })
        .collect()
}

/// Merges `merged` contacts into `survivor`: every related row moves to the survivor,
/// empty fields of the survivor are filled from the others, tags and attributes are
/// united (the survivor's values win), and each merge is recorded with a snapshot of the
/// merged contact. The merged contacts end soft-deleted, pointing at the survivor.
///
/// This moves the CRM's own rows; the caller, in the same transaction, moves what other
/// rooms keep about the merged contacts (see `contact_data::merge`). Returns the survivor
/// and the contacts merged into it, each once.
pub async fn merge(
    tx: &DatabaseTransaction,
    who: &Principal,
    survivor_id: i64,
    merged: &[i64],
) -> Result<(contact::Model, Vec<i64>)> {
    let ws = who.workspace_id;
    if merged.is_empty() {
        return Err(EngineError::invalid(
            "mergedIds",
            "name at least one contact to merge",
        ));
    }
    if merged.contains(&survivor_id) {
        return Err(EngineError::invalid(
            "mergedIds",
            "the survivor cannot be merged into itself",
        ));
    }
    let unique: BTreeSet<i64> = merged.iter().copied().collect();
    let mut survivor = records::get::<contact::Entity>(tx, ws, survivor_id).await?;
    for &id in &unique {
        let other = records::get::<contact::Entity>(tx, ws, id).await?;
        let moved = move_related(tx, id, survivor_id).await?;
        survivor = absorb(tx, ws, survivor, &other).await?;
        contact_merge::ActiveModel {
            workspace_id: Set(ws),
            survivor_id: Set(survivor_id),
            merged_id: Set(id),
            merged_snapshot: Set(serde_json::to_value(&other).unwrap_or_default()),
            moved: Set(moved),
            merged_at: Set(clock::now()),
            merged_by_key_id: Set(who.key_id),
            ..Default::default()
        }
        .insert(tx)
        .await?;
        // The merged row gives up its email so the address can live on the survivor
        // under the unique (workspace, email) index.
        let mut am: contact::ActiveModel = other.into();
        am.email = Set(None);
        am.merged_into_id = Set(Some(survivor_id));
        am.deleted_at = Set(Some(clock::now()));
        am.update(tx).await?;
    }
    Ok((survivor, unique.into_iter().collect()))
}

/// Repoints every row that references `from` to `to`; returns the counts per kind.
async fn move_related(db: &impl ConnectionTrait, from: i64, to: i64) -> Result<serde_json::Value> {
    let deals = deal::Entity::update_many()
        .col_expr(deal::Column::ContactId, Expr::value(to))
        .filter(deal::Column::ContactId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    let activities = activity::Entity::update_many()
        .col_expr(activity::Column::ContactId, Expr::value(to))
        .filter(activity::Column::ContactId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    let tasks = task::Entity::update_many()
        .col_expr(task::Column::ContactId, Expr::value(to))
        .filter(task::Column::ContactId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    let inquiries = inquiry::Entity::update_many()
        .col_expr(inquiry::Column::ContactId, Expr::value(to))
        .filter(inquiry::Column::ContactId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    let orders = order::Entity::update_many()
        .col_expr(order::Column::ContactId, Expr::value(to))
        .filter(order::Column::ContactId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    let events = event::Entity::update_many()
        .col_expr(event::Column::ContactId, Expr::value(to))
        .filter(event::Column::ContactId.eq(from))
        .exec(db)
        .await?
        .rows_affected;
    // Earlier merges into `from` now belong to the survivor's history.
    contact_merge::Entity::update_many()
        .col_expr(contact_merge::Column::SurvivorId, Expr::value(to))
        .filter(contact_merge::Column::SurvivorId.eq(from))
        .exec(db)
        .await?;
    contact::Entity::update_many()
        .col_expr(contact::Column::MergedIntoId, Expr::value(to))
        .filter(contact::Column::MergedIntoId.eq(from))
        .exec(db)
        .await?;
    Ok(json!({
        "deals": deals, "activities": activities, "tasks": tasks,
        "inquiries": inquiries, "orders": orders, "events": events,
    }))
}

/// Fills the survivor's gaps from `other` and unites lists and attributes.
async fn absorb(
    db: &impl ConnectionTrait,
    ws: i64,
    survivor: contact::Model,
    other: &contact::Model,
) -> Result<contact::Model> {
    let mut emails = json_strings(&survivor.other_emails);
    for e in other
        .email
        .iter()
        .cloned()
        .chain(json_strings(&other.other_emails))
    {
        if survivor.email.as_deref() != Some(e.as_str()) && !emails.contains(&e) {
            emails.push(e);
        }
    }
    let mut tags = json_strings(&survivor.tags);
    for t in json_strings(&other.tags) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let mut attributes = other.attributes.as_object().cloned().unwrap_or_default();
    attributes.extend(survivor.attributes.as_object().cloned().unwrap_or_default());

    let mut am: contact::ActiveModel = survivor.clone().into();
    if survivor.first_name.is_empty() {
        am.first_name = Set(other.first_name.clone());
    }
    if survivor.last_name.is_empty() {
        am.last_name = Set(other.last_name.clone());
    }
    if survivor.phone.is_none() {
        am.phone = Set(other.phone.clone());
        am.phone_normalized = Set(other.phone_normalized.clone());
    }
    am.company_id = Set(survivor.company_id.or(other.company_id));
    am.owner_id = Set(survivor.owner_id.or(other.owner_id));
    am.source = Set(survivor.source.clone().or(other.source.clone()));
    am.timezone = Set(survivor.timezone.clone().or(other.timezone.clone()));
    am.other_emails = Set(json!(emails));
    am.tags = Set(json!(tags));
    am.attributes = Set(serde_json::Value::Object(attributes));
    am.updated_at = Set(clock::now());
    let saved = am.update(db).await?;
    let parsed: Vec<Tag> = tags
        .iter()
        .filter_map(|t| Tag::parse("tags", t).ok())
        .collect();
    replace_tags(db, ws, saved.id, &parsed).await?;
    // Both sides' values were checked when written; the survivor's typed copies follow
    // its merged attributes.
    let fields = super::fields::definitions(db, ws).await?;
    super::fields::sync(db, &fields, &saved).await?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_by_a_letter_are_similar() {
        assert!(similar("jon smith", "john smith"));
        assert!(!similar("al li", "bo li"));
        assert!(!similar("jane smith", "john smith"));
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
