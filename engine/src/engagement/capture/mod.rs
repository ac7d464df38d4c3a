//! Lead capture from websites: a visitor's email identifies or creates their contact,
//! what they do on the site is tracked, and marketing consent is asked for by double
//! opt-in. Reached with a publishable ingest key ([`keys`]) from the site's own pages, or
//! through a form Rapport hosts ([`forms`]).
//!
//! A capture can change little, because whoever sends it is a stranger: it creates a
//! contact, fills the fields of an existing one that are still empty (it never overwrites
//! what the team or the person entered), adds events, and asks for consent — which only
//! the person's click in the confirmation email grants. It answers nothing about what is
//! stored: not whether the address was known, nor any id — so everything a capture sends
//! is checked before the address is looked up, and a known address fails or succeeds
//! exactly as an unknown one would. Events from websites are typed `web.<type>`, so a
//! stranger cannot fake the events the team's own systems record (an order, say), which
//! sequences and scores trust.

pub mod forms;
pub mod keys;

use rapport_schema::{consent_event, contact};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::crm::contacts::{self, ContactInput};
use crate::crm::events::{self, EventInput};
use crate::engagement::consent;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::values::{ConsentPurpose, ConsentStatus, EmailAddress, Patch, PhoneNumber, Scope, Text};

/// The longest `source` a contact keeps (as the contact room allows).
const SOURCE_CHARS: usize = 100;

/// The prefix of every event type a capture records.
pub const WEB_EVENT_PREFIX: &str = "web.";

/// What a visitor tells about themselves: their address and, if asked, name and phone.
#[derive(Clone, Debug, Default)]
pub struct Visitor {
    /// The email address, which identifies them.
    pub email: String,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Phone number as typed.
    pub phone: Option<String>,
}

/// Who a capture found or made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identified {
    /// The contact with the visitor's address; `created` when the capture made it.
    Contact {
        /// Its id.
        id: i64,
        /// Whether it is new.
        created: bool,
    },
    /// The address belongs to a deleted contact: a stranger's form does not bring it back.
    Deleted,
}

/// The principal a capture writes as: write scope in its workspace, no key.
fn capturing(ws: i64) -> Principal {
    Principal::acting_for(ws, Scope::Write)
}

/// A visitor's fields, each checked as the contact room would check it: a name that is
/// too long or a phone that does not parse is refused before the address is looked up.
struct Checked {
    email: EmailAddress,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
}

fn check(visitor: &Visitor) -> Result<Checked> {
    let name = |raw: &Option<String>, field: &str| -> Result<Option<String>> {
        match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(n) => Ok(Some(Text::parse(field, n, 100)?.into_string())),
            None => Ok(None),
        }
    };
    let phone = match visitor
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(p) => {
            PhoneNumber::parse("phone", p)?;
            Some(p.to_string())
        }
        None => None,
    };
    Ok(Checked {
        email: EmailAddress::parse("email", &visitor.email)?,
        first_name: name(&visitor.first_name, "firstName")?,
        last_name: name(&visitor.last_name, "lastName")?,
        phone,
    })
}

async fn find(
    db: &DatabaseConnection,
    ws: i64,
    email: &EmailAddress,
) -> Result<Option<contact::Model>> {
    Ok(contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(ws))
        .filter(contact::Column::Email.eq(email.as_str()))
        .one(db)
        .await?)
}

/// Identifies the visitor by email in workspace `ws`, creating their contact (with
/// `source`, such as `form: Newsletter`) when there is none, and filling only the fields
/// of an existing contact that are still empty.
pub async fn identify(
    db: &DatabaseConnection,
    ws: i64,
    visitor: &Visitor,
    source: &str,
) -> Result<Identified> {
    let Checked {
        email,
        first_name: first,
        last_name: last,
        phone,
    } = check(visitor)?;
    let who = capturing(ws);
    for attempt in 0..2 {
        match find(db, ws, &email).await? {
            Some(c) if c.deleted_at.is_some() || c.merged_into_id.is_some() => {
                return Ok(Identified::Deleted);
            }
            Some(c) => {
                let input = ContactInput {
                    first_name: first.clone().filter(|_| c.first_name.trim().is_empty()),
                    last_name: last.clone().filter(|_| c.last_name.trim().is_empty()),
                    phone: match (&c.phone, &phone) {
                        (None, Some(p)) => Patch::Set(p.clone()),
                        _ => Patch::Keep,
                    },
                    ..Default::default()
                };
                if input.first_name.is_some()
                    || input.last_name.is_some()
                    || matches!(input.phone, Patch::Set(_))
                {
                    contacts::update(db, &who, c.id, input).await?;
                }
                return Ok(Identified::Contact {
                    id: c.id,
                    created: false,
                });
            }
            None => {
                let input = ContactInput {
                    first_name: first.clone(),
                    last_name: last.clone(),
                    email: Patch::Set(email.as_str().to_string()),
                    phone: phone.clone().map_or(Patch::Keep, Patch::Set),
                    source: Patch::Set(source.chars().take(SOURCE_CHARS).collect()),
                    ..Default::default()
                };
                match contacts::create(db, &who, input).await {
                    Ok(c) => {
                        return Ok(Identified::Contact {
                            id: c.id,
                            created: true,
                        });
                    }
                    // Two captures of one new address at once: the other made it; find it.
                    Err(EngineError::Conflict(_)) if attempt == 0 => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(EngineError::internal(
        "a captured address was neither found nor created",
    ))
}

/// Records an event `web.<event_type>` with `properties` for the visitor with `email`
/// (identified or created first, after the event is checked). Returns who it concerned.
pub async fn track(
    db: &DatabaseConnection,
    ws: i64,
    visitor: &Visitor,
    source: &str,
    event_type: &str,
    properties: serde_json::Value,
) -> Result<Identified> {
    let event_type = match event_type.strip_prefix(WEB_EVENT_PREFIX) {
        Some(rest) => format!("{WEB_EVENT_PREFIX}{rest}"),
        None => format!("{WEB_EVENT_PREFIX}{event_type}"),
    };
    events::check(&event_type, &properties)?;
    let found = identify(db, ws, visitor, source).await?;
    if let Identified::Contact { id, .. } = found {
        events::track(
            db,
            &capturing(ws),
            EventInput {
                contact_id: id,
                event_type,
                properties,
                occurred_at: None,
            },
        )
        .await?;
    }
    Ok(found)
}

/// How long a double opt-in request stands before another may be sent: a stranger can
/// type anyone's address into a form, so the address gets at most one confirmation
/// email a day from captures.
pub const OPT_IN_RESEND_HOURS: i64 = 24;

/// What asking a contact for marketing consent did.
#[derive(Debug)]
pub enum OptIn {
    /// They have already granted it: nothing to ask.
    AlreadyGranted,
    /// A request went out less than [`OPT_IN_RESEND_HOURS`] ago.
    AlreadyAsked,
    /// `pending` was recorded; the confirmation email carries `token`.
    Asked {
        /// The pending consent event.
        pending: Box<consent_event::Model>,
        /// The signed confirmation token.
        token: String,
    },
}

/// The contact's latest marketing consent record, if any.
async fn latest_marketing(
    db: &impl sea_orm::ConnectionTrait,
    ws: i64,
    contact_id: i64,
) -> Result<Option<consent_event::Model>> {
    let history = consent::history(db, ws, &[contact_id]).await?;
    Ok(history
        .get(&contact_id)
        .map(|h| consent::current(h))
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.channel == "email" && e.purpose == ConsentPurpose::Marketing.as_str())
        .cloned())
}

/// Starts a double opt-in for marketing email, unless consent stands or was just asked.
///
/// The check and the `pending` record happen in one write transaction, serialised per
/// contact (an advisory lock on PostgreSQL; SQLite's write transactions are serial), so
/// concurrent sign-ups of one address send one confirmation, not one each.
pub async fn request_opt_in(
    db: &DatabaseConnection,
    ws: i64,
    contact_id: i64,
    source: &str,
) -> Result<OptIn> {
    let tx = crate::platform::db::write(db).await?;
    if tx.get_database_backend() == sea_orm::DbBackend::Postgres {
        tx.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, $2)",
            [OPT_IN_LOCK.into(), (contact_id as i32).into()],
        ))
        .await?;
    }
    if let Some(e) = latest_marketing(&tx, ws, contact_id).await? {
        if e.status == ConsentStatus::Granted.as_str() {
            return Ok(OptIn::AlreadyGranted);
        }
        if e.status == ConsentStatus::Pending.as_str()
            && crate::clock::now() - e.recorded_at < chrono::Duration::hours(OPT_IN_RESEND_HOURS)
        {
            return Ok(OptIn::AlreadyAsked);
        }
    }
    let (pending, token) = consent::request(
        &tx,
        &capturing(ws),
        contact_id,
        ConsentPurpose::Marketing,
        Some(source.chars().take(SOURCE_CHARS).collect()),
    )
    .await?;
    tx.commit().await?;
    Ok(OptIn::Asked {
        pending: Box::new(pending),
        token,
    })
}

/// The first key of the advisory locks that serialise opt-in requests per contact (the
/// second is the contact id, folded to 32 bits: a collision only serialises two people).
const OPT_IN_LOCK: i32 = 0x0A11_0001;

/// Records marketing consent given on a form without double opt-in, with the proof of
/// the visitor's request — unless the person withdrew or refused it before: a stranger
/// typing their address must not undo that, so they are asked by double opt-in instead.
pub async fn grant_from_form(
    db: &DatabaseConnection,
    ws: i64,
    contact_id: i64,
    form: &str,
    proof: consent::Proof,
) -> Result<Option<OptIn>> {
    if let Some(e) = latest_marketing(db, ws, contact_id).await? {
        if e.status == ConsentStatus::Granted.as_str() {
            return Ok(None);
        }
        if e.status == ConsentStatus::Withdrawn.as_str()
            || e.status == ConsentStatus::Denied.as_str()
        {
            let source = format!("form: {form}");
            return request_opt_in(db, ws, contact_id, &source).await.map(Some);
        }
    }
    consent::record(
        db,
        &capturing(ws),
        contact_id,
        consent::ConsentInput {
            purpose: ConsentPurpose::Marketing.as_str().into(),
            status: ConsentStatus::Granted.as_str().into(),
            source: Some("web form".into()),
            ip: proof.ip,
            user_agent: proof.user_agent.map(|ua| ua.chars().take(500).collect()),
            form: Some(form.chars().take(200).collect()),
            ..Default::default()
        },
    )
    .await?;
    Ok(None)
}
