//! Before a campaign goes out: whom it would reach now and why the others would be
//! skipped, and a test send of each variant to an address the marketer types.
//!
//! The reach applies the rules [`super::send_batch`] applies per message (an address, no
//! suppression, a granted marketing opt-in, not opted out of the topic), in the same
//! order, but set-wise over pages of the segment, so a marketer sees the numbers the
//! send will produce without sending.

use std::collections::{HashMap, HashSet};

use rapport_schema::{
    consent_event, contact, suppression as suppression_row, topic_preference, user,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Campaign, audience_condition};
use crate::engagement::suppression;
use crate::engagement::templates::{self, PageLinks, TemplateParts};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::email::{self, Mailer, Outgoing};
use crate::platform::records::{self, Deleted};
use crate::values::{ConsentStatus, EmailAddress, Scope};

/// The most segment members one reach counts; past it the counts cover the first ones
/// (by id) and [`Reach::complete`] is false. A reach is a read any key may ask for, so
/// its work is bounded like a page.
pub const MAX_COUNTED: usize = 200_000;

/// Contacts read per round trip.
const PAGE: u64 = 1_000;

/// Whom a campaign would reach if it were sent now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reach {
    /// Contacts in the segment now (counted, up to [`MAX_COUNTED`]).
    pub members: u64,
    /// Of those, how many would be sent the email.
    pub will_receive: u64,
    /// Skipped: no (valid) email address.
    pub no_address: u64,
    /// Skipped: the address is on the suppression list.
    pub suppressed: u64,
    /// Skipped: no granted marketing consent on record (none, pending, denied, withdrawn).
    pub no_consent: u64,
    /// Skipped: opted out of the campaign's topic.
    pub topic_opted_out: u64,
    /// Whether every member was counted.
    pub complete: bool,
}

/// Counts [`Reach`] for a campaign's segment as it stands now.
pub async fn reach(db: &impl ConnectionTrait, workspace_id: i64, c: &Campaign) -> Result<Reach> {
    let condition = audience_condition(db, workspace_id, c.campaign.segment_id).await?;
    let mut out = Reach {
        complete: true,
        ..Reach::default()
    };
    let mut after = 0i64;
    loop {
        let page: Vec<(i64, Option<String>)> =
            records::scoped::<contact::Entity>(workspace_id, Deleted::Exclude)
                .filter(condition.clone())
                .filter(contact::Column::Id.gt(after))
                .select_only()
                .column(contact::Column::Id)
                .column(contact::Column::Email)
                .order_by_asc(contact::Column::Id)
                .limit(PAGE)
                .into_tuple()
                .all(db)
                .await?;
        let Some(&(last, _)) = page.last() else { break };
        after = last;
        count_page(db, workspace_id, c.campaign.topic_id, &page, &mut out).await?;
        if out.members as usize >= MAX_COUNTED {
            // Counted as many as a reach may: complete only if nobody is left.
            let more: Option<i64> =
                records::scoped::<contact::Entity>(workspace_id, Deleted::Exclude)
                    .filter(condition.clone())
                    .filter(contact::Column::Id.gt(after))
                    .select_only()
                    .column(contact::Column::Id)
                    .into_tuple()
                    .one(db)
                    .await?;
            out.complete = more.is_none();
            break;
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    Ok(out)
}

async fn count_page(
    db: &impl ConnectionTrait,
    ws: i64,
    topic: Option<i64>,
    page: &[(i64, Option<String>)],
    out: &mut Reach,
) -> Result<()> {
    out.members += page.len() as u64;
    let mut addressed: Vec<(i64, String)> = Vec::with_capacity(page.len());
    for (id, raw) in page {
        match raw
            .as_deref()
            .and_then(|e| EmailAddress::parse("email", e).ok())
        {
            Some(address) => addressed.push((*id, suppression::email_hash(&address))),
            None => out.no_address += 1,
        }
    }
    let hashes: Vec<&str> = addressed.iter().map(|(_, h)| h.as_str()).collect();
    let suppressed: HashSet<String> = suppression_row::Entity::find()
        .filter(suppression_row::Column::WorkspaceId.eq(ws))
        .filter(suppression_row::Column::EmailHash.is_in(hashes))
        .select_only()
        .column(suppression_row::Column::EmailHash)
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let ids: Vec<i64> = addressed.iter().map(|(id, _)| *id).collect();
    // Ascending by id, so the last row seen per contact is their standing now.
    let mut consent: HashMap<i64, String> = HashMap::new();
    let rows: Vec<(i64, String)> = consent_event::Entity::find()
        .filter(consent_event::Column::WorkspaceId.eq(ws))
        .filter(consent_event::Column::ContactId.is_in(ids.clone()))
        .filter(consent_event::Column::Channel.eq("email"))
        .filter(consent_event::Column::Purpose.eq("marketing"))
        .order_by_asc(consent_event::Column::Id)
        .select_only()
        .column(consent_event::Column::ContactId)
        .column(consent_event::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    consent.extend(rows);
    let mut opted_in_topic: HashMap<i64, bool> = HashMap::new();
    if let Some(topic) = topic {
        let rows: Vec<(i64, bool)> = topic_preference::Entity::find()
            .filter(topic_preference::Column::WorkspaceId.eq(ws))
            .filter(topic_preference::Column::ContactId.is_in(ids))
            .filter(topic_preference::Column::TopicId.eq(topic))
            .order_by_asc(topic_preference::Column::Id)
            .select_only()
            .column(topic_preference::Column::ContactId)
            .column(topic_preference::Column::Subscribed)
            .into_tuple()
            .all(db)
            .await?;
        opted_in_topic.extend(rows);
    }
    for (id, hash) in &addressed {
        if suppressed.contains(hash) {
            out.suppressed += 1;
        } else if consent.get(id).map(|s| ConsentStatus::from_db(s)) != Some(ConsentStatus::Granted)
        {
            out.no_consent += 1;
        } else if opted_in_topic.get(id) == Some(&false) {
            out.topic_opted_out += 1;
        } else {
            out.will_receive += 1;
        }
    }
    Ok(())
}

/// Where a test send's links point: nowhere that acts. A test mail reaches whoever the
/// marketer typed, so its unsubscribe link must not withdraw the sample contact's consent.
const TEST_LINK: &str = "https://example.invalid/test-send-has-no-working-links";

/// Sends each variant of a campaign, rendered for `sample` (or the segment's first
/// member), to `to`, with `[Test]` before the subject and links that do nothing (write
/// scope). Returns how many messages went. Consent does not apply: the recipient is the
/// marketer, not the contact. So that nobody can use it to mail the world, `to` must be
/// the address of a person of the workspace, and not suppressed.
pub async fn send_test(
    db: &impl ConnectionTrait,
    mailer: &Mailer,
    who: &Principal,
    c: &Campaign,
    to: &EmailAddress,
    sample: Option<i64>,
) -> Result<usize> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    test_recipient(db, ws, to).await?;
    let contact_id = match sample {
        Some(id) => records::get::<contact::Entity>(db, ws, id).await?.id,
        None => {
            let condition = audience_condition(db, ws, c.campaign.segment_id).await?;
            records::scoped::<contact::Entity>(ws, Deleted::Exclude)
                .filter(condition)
                .order_by_asc(contact::Column::Id)
                .select_only()
                .column(contact::Column::Id)
                .into_tuple::<i64>()
                .one(db)
                .await?
                .ok_or_else(|| {
                    EngineError::invalid(
                        "contactId",
                        "the segment is empty; name a contact to render the test for",
                    )
                })?
        }
    };
    if c.variants.is_empty() {
        return Err(EngineError::invalid(
            "variants",
            "the campaign has no variant",
        ));
    }
    let from = EmailAddress::parse("fromEmail", &c.campaign.from_email)?;
    let pages = PageLinks {
        unsubscribe: TEST_LINK,
        preferences: TEST_LINK,
    };
    for v in &c.variants {
        let parts = TemplateParts {
            subject: v.subject.clone(),
            html: v.html.clone(),
            text: v.text.clone(),
        };
        let rendered = templates::render_parts_for(db, ws, parts, contact_id, &pages).await?;
        let subject = if c.variants.len() > 1 {
            format!("[Test {}] {}", v.name, rendered.subject)
        } else {
            format!("[Test] {}", rendered.subject)
        };
        let message = email::build(&Outgoing {
            from: from.clone(),
            from_name: c.campaign.from_name.clone(),
            to: to.clone(),
            subject,
            html: rendered.html,
            text: rendered.text,
            key: format!(
                "campaign-test/{}/{}/{}",
                c.campaign.id,
                v.id,
                crate::clock::now().timestamp_micros()
            ),
            unsubscribe_url: None,
        })?;
        // The mail server's refusal is ours to look into, not the marketer's input.
        mailer.send(message).await.map_err(|e| match e {
            EngineError::Conflict(why) => {
                EngineError::internal(format!("a test send failed: {why}"))
            }
            other => other,
        })?;
        tracing::info!(
            campaign = c.campaign.id,
            key = ?who.key_id,
            user = ?who.user_id,
            variants = c.variants.len(),
            "campaign test sent to a person of the workspace"
        );
    }
    Ok(c.variants.len())
}

/// Refuses a test send's address unless it belongs to a person of the workspace and is not
/// suppressed: test mail reaches colleagues, never the world.
pub async fn test_recipient(db: &impl ConnectionTrait, ws: i64, to: &EmailAddress) -> Result<()> {
    let colleague = user::Entity::find()
        .filter(user::Column::WorkspaceId.eq(ws))
        .filter(user::Column::DeletedAt.is_null())
        .filter(user::Column::Email.eq(to.as_str()))
        .select_only()
        .column(user::Column::Id)
        .into_tuple::<i64>()
        .one(db)
        .await?;
    if colleague.is_none() {
        return Err(EngineError::invalid(
            "to",
            "test emails go only to people of this workspace (a user's email address)",
        ));
    }
    let hash = suppression::email_hash(to);
    let suppressed = suppression_row::Entity::find()
        .filter(suppression_row::Column::WorkspaceId.eq(ws))
        .filter(suppression_row::Column::EmailHash.eq(hash))
        .one(db)
        .await?;
    if suppressed.is_some() {
        return Err(EngineError::invalid(
            "to",
            "the address is on the suppression list",
        ));
    }
    Ok(())
}
