//! Email topics and the preference centre: a workspace's kinds of marketing mail
//! (newsletter, product updates), each contact's choice per topic, and the signed page
//! where a person makes those choices or unsubscribes from all marketing.
//!
//! Topics narrow marketing consent, never widen it: mail about a topic goes to a contact
//! who may receive marketing at all ([`super::consent`]) and has not opted out of that
//! topic. Choices are appended like consent's history; the latest stands, and no choice
//! means subscribed.

use std::collections::{HashMap, HashSet};

use rapport_schema::{email_topic, topic_preference};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::consent::{self, Proof};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::links::{self, Action};
use crate::platform::records::{self, Deleted};
use crate::values::{Scope, Text};

/// Topics one workspace may have.
pub const MAX_TOPICS: usize = 50;

/// A topic as a client writes it.
#[derive(Clone, Debug, Default)]
pub struct TopicInput {
    /// How campaigns and sequences name it (`newsletter`): letters, digits, `_` and `-`.
    pub key: Option<String>,
    /// How people read it.
    pub name: Option<String>,
    /// One line on what it brings.
    pub description: Option<String>,
}

fn parse_key(raw: &str) -> Result<String> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(EngineError::invalid(
            "key",
            "a topic's key is 1 to 64 letters, digits, '_' or '-'",
        ))
    }
}

/// The workspace's topics, by name.
pub async fn list(db: &impl ConnectionTrait, ws: i64) -> Result<Vec<email_topic::Model>> {
    Ok(email_topic::Entity::find()
        .filter(email_topic::Column::WorkspaceId.eq(ws))
        .order_by_asc(email_topic::Column::Name)
        .order_by_asc(email_topic::Column::Id)
        .all(db)
        .await?)
}

/// The topic with this key, if the workspace has one.
pub async fn by_key(
    db: &impl ConnectionTrait,
    ws: i64,
    key: &str,
) -> Result<Option<email_topic::Model>> {
    Ok(email_topic::Entity::find()
        .filter(email_topic::Column::WorkspaceId.eq(ws))
        .filter(email_topic::Column::Key.eq(key))
        .one(db)
        .await?)
}

/// The topic `id` of the workspace, or NOT_FOUND.
pub async fn get(db: &impl ConnectionTrait, ws: i64, id: i64) -> Result<email_topic::Model> {
    email_topic::Entity::find_by_id(id)
        .filter(email_topic::Column::WorkspaceId.eq(ws))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("EmailTopic", id))
}

/// Creates a topic (write scope).
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: TopicInput,
) -> Result<email_topic::Model> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let key = parse_key(input.key.as_deref().unwrap_or_default())?;
    let name = Text::parse("name", input.name.as_deref().unwrap_or(&key), 100)?.into_string();
    let description = Text::parse_opt("description", input.description.as_deref(), 300)?;
    if by_key(db, ws, &key).await?.is_some() {
        return Err(EngineError::Conflict(format!(
            "a topic '{key}' already exists"
        )));
    }
    if list(db, ws).await?.len() >= MAX_TOPICS {
        return Err(EngineError::invalid(
            "key",
            format!("at most {MAX_TOPICS} topics per workspace"),
        ));
    }
    let now = clock::now();
    Ok(email_topic::ActiveModel {
        workspace_id: Set(ws),
        key: Set(key),
        name: Set(name),
        description: Set(description.map(Text::into_string)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Each topic's standing choice of each contact: (contact, topic) → subscribed.
async fn choices(
    db: &impl ConnectionTrait,
    ws: i64,
    contacts: &[i64],
) -> Result<HashMap<(i64, i64), bool>> {
    use topic_preference::Column as P;
    // The latest row per (contact, topic) only: however long the history, one row each.
    let latest: Vec<i64> = topic_preference::Entity::find()
        .select_only()
        .column_as(P::Id.max(), "id")
        .filter(P::WorkspaceId.eq(ws))
        .filter(P::ContactId.is_in(contacts.iter().copied()))
        .group_by(P::ContactId)
        .group_by(P::TopicId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(topic_preference::Entity::find()
        .filter(P::Id.is_in(latest))
        .all(db)
        .await?
        .into_iter()
        .map(|r| ((r.contact_id, r.topic_id), r.subscribed))
        .collect())
}

/// A contact's choice on every topic of the workspace (subscribed when none was made).
pub async fn preferences(
    db: &impl ConnectionTrait,
    ws: i64,
    contact_id: i64,
) -> Result<Vec<(email_topic::Model, bool)>> {
    let chosen = choices(db, ws, &[contact_id]).await?;
    Ok(list(db, ws)
        .await?
        .into_iter()
        .map(|t| {
            let on = chosen.get(&(contact_id, t.id)).copied().unwrap_or(true);
            (t, on)
        })
        .collect())
}

/// Whether mail about `topic_id` may go to the contact as far as topics go (marketing
/// consent is checked on its own).
pub async fn allows(
    db: &impl ConnectionTrait,
    ws: i64,
    contact_id: i64,
    topic_id: i64,
) -> Result<bool> {
    let latest = topic_preference::Entity::find()
        .filter(topic_preference::Column::WorkspaceId.eq(ws))
        .filter(topic_preference::Column::ContactId.eq(contact_id))
        .filter(topic_preference::Column::TopicId.eq(topic_id))
        .order_by_desc(topic_preference::Column::Id)
        .one(db)
        .await?;
    Ok(latest.is_none_or(|p| p.subscribed))
}

/// Choices one contact may record in an hour: ample for a person, a wall for a script
/// replaying their page.
const CHANGES_PER_HOUR: u64 = 200;

async fn within_rate(db: &impl ConnectionTrait, ws: i64, contact_id: i64) -> Result<()> {
    use sea_orm::PaginatorTrait;
    let recent = topic_preference::Entity::find()
        .filter(topic_preference::Column::WorkspaceId.eq(ws))
        .filter(topic_preference::Column::ContactId.eq(contact_id))
        .filter(topic_preference::Column::RecordedAt.gt(clock::now() - chrono::Duration::hours(1)))
        .count(db)
        .await?;
    if recent >= CHANGES_PER_HOUR {
        return Err(EngineError::invalid(
            "topic",
            "too many changes to these preferences in the last hour; try again later",
        ));
    }
    Ok(())
}

async fn append(
    db: &impl ConnectionTrait,
    ws: i64,
    contact_id: i64,
    topic_id: i64,
    subscribed: bool,
    source: &str,
) -> Result<()> {
    topic_preference::ActiveModel {
        workspace_id: Set(ws),
        contact_id: Set(contact_id),
        topic_id: Set(topic_id),
        subscribed: Set(subscribed),
        source: Set(Some(source.to_string())),
        recorded_at: Set(clock::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Subscribes a contact to topic `topic_id` of workspace `ws` from a sign-up (a hosted
/// form), recorded with `source` — only when they have made no choice on the topic yet:
/// whoever sends a form may be a stranger, who must not undo the person's own "no". So a
/// sign-up adds at most one row per contact and topic, and draws nothing from the
/// person's own budget of changes.
pub async fn subscribe_from_form(
    db: &impl ConnectionTrait,
    ws: i64,
    contact_id: i64,
    topic_id: i64,
    source: &str,
) -> Result<()> {
    get(db, ws, topic_id).await?;
    let chosen = topic_preference::Entity::find()
        .filter(topic_preference::Column::WorkspaceId.eq(ws))
        .filter(topic_preference::Column::ContactId.eq(contact_id))
        .filter(topic_preference::Column::TopicId.eq(topic_id))
        .one(db)
        .await?
        .is_some();
    if chosen {
        return Ok(());
    }
    append(db, ws, contact_id, topic_id, true, source).await
}

/// Records a contact's choice on one topic, named by key (write scope).
pub async fn set(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: i64,
    topic_key: &str,
    subscribed: bool,
) -> Result<Vec<(email_topic::Model, bool)>> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    records::get_with::<rapport_schema::contact::Entity>(db, ws, contact_id, Deleted::Exclude)
        .await?;
    let topic = by_key(db, ws, topic_key)
        .await?
        .ok_or_else(|| EngineError::invalid("topic", format!("there is no topic '{topic_key}'")))?;
    within_rate(db, ws, contact_id).await?;
    append(db, ws, contact_id, topic.id, subscribed, "api").await?;
    preferences(db, ws, contact_id).await
}

/// The token of a contact's preference page (write scope: the page changes consent).
pub async fn page_token(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: i64,
) -> Result<String> {
    who.require(Scope::Write)?;
    records::get::<rapport_schema::contact::Entity>(db, who.workspace_id, contact_id).await?;
    let signer = links::signer(db, who.workspace_id).await?;
    Ok(page_token_with(&signer, who.workspace_id, contact_id))
}

/// [`page_token`] with the workspace's signer at hand (while sending).
pub fn page_token_with(signer: &links::Signer, ws: i64, contact_id: i64) -> String {
    signer.sign(&links::Claim {
        ws,
        contact: contact_id,
        action: Action::Preferences,
        purpose: crate::values::ConsentPurpose::Marketing.as_str().into(),
        exp: None,
        msg: None,
        seq: None,
        tx: None,
        url: None,
        req: None,
    })
}

/// What the preference page shows: the person's first name and their choice per topic.
pub async fn page(
    db: &DatabaseConnection,
    token: &str,
) -> Result<(String, Vec<(email_topic::Model, bool)>)> {
    let claim = links::verify(db, token, Action::Preferences).await?;
    let person =
        records::get::<rapport_schema::contact::Entity>(db, claim.ws, claim.contact).await?;
    Ok((
        person.first_name,
        preferences(db, claim.ws, claim.contact).await?,
    ))
}

/// Saves what the person chose on their page: `subscribed` holds the topics left ticked
/// (every other topic is an opt-out); `all` unsubscribes from every marketing email.
/// Only changed choices are recorded.
pub async fn save_page(
    db: &DatabaseConnection,
    token: &str,
    subscribed: &HashSet<i64>,
    all: bool,
    proof: Proof,
) -> Result<()> {
    let claim = links::verify(db, token, Action::Preferences).await?;
    let (ws, contact) = (claim.ws, claim.contact);
    within_rate(db, ws, contact).await?;
    let tx = crate::platform::db::write(db).await?;
    for (topic, on) in preferences(&tx, ws, contact).await? {
        let wanted = subscribed.contains(&topic.id);
        if wanted != on {
            append(&tx, ws, contact, topic.id, wanted, "preference page").await?;
        }
    }
    tx.commit().await?;
    if all {
        consent::follow(db, token, Action::Preferences, proof).await?;
    }
    Ok(())
}
