//! Consent: per contact, channel and purpose, an append-only history of what the person
//! agreed to, with its source, lawful basis and proof. The current status is the latest
//! entry; nothing is ever updated or deleted except by erasing the person.
//!
//! [`may_email`] is the one question sending code asks, at send time.

use std::collections::HashMap;
use std::net::IpAddr;

use rapport_schema::{consent_event, contact};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, Set, Statement,
};

use crate::clock;
use crate::engagement::suppression;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records::{self, Deleted};
use crate::platform::{links, outbox};
use crate::values::{
    ConsentChannel, ConsentPurpose, ConsentStatus, EmailAddress, LawfulBasis, Scope, Text,
    WebhookEventType,
};

/// What a person agreed to, as a client reports it.
#[derive(Clone, Debug, Default)]
pub struct ConsentInput {
    /// The channel (default email).
    pub channel: Option<String>,
    /// Marketing or transactional.
    pub purpose: String,
    /// The new status.
    pub status: String,
    /// The lawful basis (default: consent).
    pub lawful_basis: Option<String>,
    /// Where it was given.
    pub source: Option<String>,
    /// The IP address it came from.
    pub ip: Option<String>,
    /// The browser's user agent.
    pub user_agent: Option<String>,
    /// The form or page.
    pub form: Option<String>,
}

/// Records a consent event for a contact of the caller's workspace (write scope).
pub async fn record(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: i64,
    input: ConsentInput,
) -> Result<consent_event::Model> {
    who.require(Scope::Write)?;
    append(db, who.workspace_id, who.key_id, contact_id, input).await
}

/// Appends an event without a caller's scope check: for the contact's own acts (following
/// an unsubscribe or confirmation link), which carry a signed claim instead.
async fn append(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    key_id: Option<i64>,
    contact_id: i64,
    input: ConsentInput,
) -> Result<consent_event::Model> {
    records::get_with::<contact::Entity>(db, workspace_id, contact_id, Deleted::Exclude).await?;
    let channel = match input.channel.as_deref() {
        Some(c) => ConsentChannel::parse("channel", c)?,
        None => ConsentChannel::Email,
    };
    let purpose = ConsentPurpose::parse("purpose", &input.purpose)?;
    let status = ConsentStatus::parse("status", &input.status)?;
    let lawful_basis = match input.lawful_basis.as_deref() {
        Some(b) => LawfulBasis::parse("lawfulBasis", b)?,
        None => LawfulBasis::Consent,
    };
    let ip = input
        .ip
        .as_deref()
        .map(|raw| {
            raw.trim().parse::<IpAddr>().map_err(|_| {
                EngineError::invalid("ip", format!("'{raw}' is not an IPv4 or IPv6 address"))
            })
        })
        .transpose()?;
    let text = |field: &str, v: Option<&str>, max| -> Result<Option<String>> {
        Ok(Text::parse_opt(field, v, max)?.map(Text::into_string))
    };
    let saved = consent_event::ActiveModel {
        workspace_id: Set(workspace_id),
        contact_id: Set(contact_id),
        channel: Set(channel.as_str().to_string()),
        purpose: Set(purpose.as_str().to_string()),
        status: Set(status.as_str().to_string()),
        lawful_basis: Set(lawful_basis.as_str().to_string()),
        source: Set(text("source", input.source.as_deref(), 200)?),
        proof_ip: Set(ip.map(|i| i.to_string())),
        proof_user_agent: Set(text("userAgent", input.user_agent.as_deref(), 500)?),
        proof_form: Set(text("form", input.form.as_deref(), 500)?),
        recorded_at: Set(clock::now()),
        recorded_by_key_id: Set(key_id),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let mut object = outbox::object("ConsentEvent", &saved);
    // The proof stays in Rapport: an app needs the decision, not the person's address.
    if let Some(fields) = object.as_object_mut() {
        fields.remove("proofIp");
        fields.remove("proofUserAgent");
    }
    let subject = outbox::Subject::contact(contact_id);
    let data = serde_json::json!({ "object": object });
    outbox::emit(
        db,
        workspace_id,
        WebhookEventType::ConsentChanged,
        subject,
        data,
    )
    .await?;
    Ok(saved)
}

/// Every consent event of the given contacts, oldest first.
pub async fn history(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    contacts: &[i64],
) -> Result<HashMap<i64, Vec<consent_event::Model>>> {
    let mut out: HashMap<i64, Vec<consent_event::Model>> = HashMap::new();
    for e in consent_event::Entity::find()
        .filter(consent_event::Column::WorkspaceId.eq(workspace_id))
        .filter(consent_event::Column::ContactId.is_in(contacts.iter().copied()))
        .order_by_asc(consent_event::Column::Id)
        .all(db)
        .await?
    {
        out.entry(e.contact_id).or_default().push(e);
    }
    Ok(out)
}

/// The current status per (channel, purpose) of one contact's history: its latest event.
pub fn current(history: &[consent_event::Model]) -> Vec<&consent_event::Model> {
    let mut latest: HashMap<(&str, &str), &consent_event::Model> = HashMap::new();
    for e in history {
        latest.insert((e.channel.as_str(), e.purpose.as_str()), e);
    }
    let mut current: Vec<&consent_event::Model> = latest.into_values().collect();
    current.sort_by(|a, b| (&a.channel, &a.purpose).cmp(&(&b.channel, &b.purpose)));
    current
}

/// Whether an email for `purpose` may go to a contact now, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send.
    Allowed,
    /// Do not send.
    Blocked(String),
}

/// Decides at send time: the contact must exist and have an address; no email passes the
/// suppression list; marketing also needs the latest email/marketing consent to be
/// granted, transactional mail only that the person has not refused it.
pub async fn may_email(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    contact_id: i64,
    purpose: ConsentPurpose,
) -> Result<Decision> {
    let person =
        records::get_with::<contact::Entity>(db, workspace_id, contact_id, Deleted::Exclude)
            .await?;
    let Some(address) = person.email.as_deref() else {
        return Ok(Decision::Blocked("the contact has no email address".into()));
    };
    let address = EmailAddress::parse("email", address)?;
    if let Some(entry) = suppression::lookup(db, workspace_id, &address).await? {
        return Ok(Decision::Blocked(format!(
            "the address is suppressed ({})",
            entry.reason
        )));
    }
    let events = history(db, workspace_id, &[contact_id]).await?;
    let status = events
        .get(&contact_id)
        .map(|h| current(h))
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.channel == ConsentChannel::Email.as_str() && e.purpose == purpose.as_str())
        .map(|e| ConsentStatus::from_db(&e.status));
    Ok(decide(purpose, status))
}

/// The rule: marketing needs the latest consent to be a grant; transactional mail only
/// that the person has not refused it.
fn decide(purpose: ConsentPurpose, status: Option<ConsentStatus>) -> Decision {
    match (purpose, status) {
        (ConsentPurpose::Marketing, Some(ConsentStatus::Granted)) => Decision::Allowed,
        (ConsentPurpose::Marketing, Some(s)) => {
            Decision::Blocked(format!("marketing consent is {s}"))
        }
        (ConsentPurpose::Marketing, None) => {
            Decision::Blocked("no marketing consent on record".into())
        }
        (
            ConsentPurpose::Transactional,
            Some(s @ (ConsentStatus::Denied | ConsentStatus::Withdrawn)),
        ) => Decision::Blocked(format!("transactional email is {s}")),
        (ConsentPurpose::Transactional, _) => Decision::Allowed,
    }
}

#[derive(FromQueryResult)]
struct Standing {
    live: Option<i32>,
    suppressed: Option<String>,
    status: Option<String>,
}

/// [`may_email`] for a sender that already holds the contact's address (a campaign
/// batch): the same decision from one statement, so checking at the moment of sending
/// stays cheap. The contact must still exist, undeleted.
pub async fn may_email_to(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    contact_id: i64,
    address: &EmailAddress,
    purpose: ConsentPurpose,
) -> Result<Decision> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT \
             (SELECT CASE WHEN deleted_at IS NULL THEN 1 ELSE 0 END FROM contacts WHERE id = $1 AND workspace_id = $2) AS live, \
             (SELECT reason FROM suppressions WHERE workspace_id = $2 AND email_hash = $3) AS suppressed, \
             (SELECT status FROM consent_events WHERE contact_id = $1 AND workspace_id = $2 AND channel = 'email' AND purpose = $4 ORDER BY id DESC LIMIT 1) AS status"
        }
        _ => {
            "SELECT \
             (SELECT CASE WHEN deleted_at IS NULL THEN 1 ELSE 0 END FROM contacts WHERE id = ?1 AND workspace_id = ?2) AS live, \
             (SELECT reason FROM suppressions WHERE workspace_id = ?2 AND email_hash = ?3) AS suppressed, \
             (SELECT status FROM consent_events WHERE contact_id = ?1 AND workspace_id = ?2 AND channel = 'email' AND purpose = ?4 ORDER BY id DESC LIMIT 1) AS status"
        }
    };
    let standing = Standing::find_by_statement(Statement::from_sql_and_values(
        backend,
        sql,
        [
            contact_id.into(),
            workspace_id.into(),
            suppression::email_hash(address).into(),
            purpose.as_str().into(),
        ],
    ))
    .one(db)
    .await?;
    let Some(standing) = standing else {
        return Err(EngineError::not_found("Contact", contact_id));
    };
    if standing.live != Some(1) {
        return Ok(Decision::Blocked("the contact was deleted".into()));
    }
    if let Some(reason) = standing.suppressed {
        return Ok(Decision::Blocked(format!(
            "the address is suppressed ({reason})"
        )));
    }
    Ok(decide(
        purpose,
        standing.status.as_deref().map(ConsentStatus::from_db),
    ))
}

/// Starts a double opt-in: records `pending` and returns the signed confirmation token
/// (valid [`links::CONFIRM_VALID_DAYS`] days) for the email that asks the person to confirm.
pub async fn request(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: i64,
    purpose: ConsentPurpose,
    source: Option<String>,
) -> Result<(consent_event::Model, String)> {
    let pending = record(
        db,
        who,
        contact_id,
        ConsentInput {
            purpose: purpose.as_str().into(),
            status: ConsentStatus::Pending.as_str().into(),
            source,
            ..Default::default()
        },
    )
    .await?;
    let token = links::sign(
        db,
        &links::Claim {
            seq: None,
            tx: None,
            ws: who.workspace_id,
            contact: contact_id,
            action: links::Action::Confirm,
            purpose: purpose.as_str().into(),
            exp: Some(clock::now().timestamp() + links::CONFIRM_VALID_DAYS * 86_400),
            msg: None,
            url: None,
            req: Some(pending.id),
        },
    )
    .await?;
    Ok((pending, token))
}

/// The token of a contact's unsubscribe link for `purpose` (it does not expire). Write
/// scope: whoever holds the token can withdraw the person's consent.
pub async fn unsubscribe_token(
    db: &impl ConnectionTrait,
    who: &Principal,
    contact_id: i64,
    purpose: ConsentPurpose,
) -> Result<String> {
    who.require(Scope::Write)?;
    let workspace_id = who.workspace_id;
    records::get_with::<contact::Entity>(db, workspace_id, contact_id, Deleted::Exclude).await?;
    links::sign(
        db,
        &links::Claim {
            seq: None,
            tx: None,
            ws: workspace_id,
            contact: contact_id,
            action: links::Action::Unsubscribe,
            purpose: purpose.as_str().into(),
            exp: None,
            msg: None,
            url: None,
            req: None,
        },
    )
    .await
}

/// What the browser told us when a link was followed: the proof kept with the event.
#[derive(Clone, Debug, Default)]
pub struct Proof {
    /// The client's address.
    pub ip: Option<String>,
    /// Its user agent.
    pub user_agent: Option<String>,
}

/// Carries out a followed link of kind `action`: withdraws (unsubscribe) or grants
/// (confirm) consent for the claim's purpose.
///
/// Unsubscribing twice records nothing new the second time. A confirmation grants only
/// while the request it answers is still the latest word on that purpose: it is used
/// up once it granted, and void once consent was withdrawn (or asked for again) after it.
pub async fn follow(
    db: &sea_orm::DatabaseConnection,
    token: &str,
    action: links::Action,
    proof: Proof,
) -> Result<(links::Claim, consent_event::Model)> {
    let claim = links::verify(db, token, action).await?;
    // The decision, the event and its webhook in one transaction: the history read below
    // is the one the new event follows.
    let tx = crate::platform::db::write(db).await?;
    let db = &tx;
    let (status, source) = match claim.action {
        links::Action::Unsubscribe => (ConsentStatus::Withdrawn, "unsubscribe link"),
        links::Action::Confirm => (ConsentStatus::Granted, "double opt-in confirmation"),
        // "Unsubscribe from all" on the preference page.
        links::Action::Preferences => (ConsentStatus::Withdrawn, "preference page"),
        links::Action::Open | links::Action::Click => {
            return Err(EngineError::invalid("token", "this is not a consent link"));
        }
    };
    let events = history(db, claim.ws, &[claim.contact]).await?;
    let latest = events
        .get(&claim.contact)
        .map(|h| current(h))
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.channel == ConsentChannel::Email.as_str() && e.purpose == claim.purpose)
        .cloned();
    if status == ConsentStatus::Granted {
        let answers_latest = matches!(
            (&latest, claim.req),
            (Some(e), Some(req)) if e.id == req && e.status == ConsentStatus::Pending.as_str()
        );
        if !answers_latest {
            return Err(EngineError::invalid(
                "token",
                "this confirmation link was already used or is no longer valid",
            ));
        }
    } else if let Some(e) = latest
        && e.status == status.as_str()
    {
        return Ok((claim, e));
    }
    let event = append(
        db,
        claim.ws,
        None,
        claim.contact,
        ConsentInput {
            purpose: claim.purpose.clone(),
            status: status.as_str().into(),
            source: Some(source.into()),
            // A proxy may hand us anything; an address that does not parse is left out
            // rather than failing the person's click.
            ip: proof.ip.filter(|ip| ip.trim().parse::<IpAddr>().is_ok()),
            user_agent: proof.user_agent.map(|ua| ua.chars().take(500).collect()),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok((claim, event))
}

/// Emails the confirmation link of a double opt-in (`pending`, the event [`request`]
/// recorded) to the contact, if transactional email may go to them (an address on file,
/// not suppressed, not refused). Returns why not when it was not sent.
pub async fn send_confirmation(
    db: &impl ConnectionTrait,
    mailer: &crate::platform::email::Mailer,
    sender: &EmailAddress,
    pending: &consent_event::Model,
    confirm_url: &str,
) -> Result<Option<String>> {
    let (workspace_id, contact_id, request_id) =
        (pending.workspace_id, pending.contact_id, pending.id);
    let purpose = ConsentPurpose::from_db(&pending.purpose);
    if let Decision::Blocked(why) =
        may_email(db, workspace_id, contact_id, ConsentPurpose::Transactional).await?
    {
        return Ok(Some(why));
    }
    let person = records::get::<contact::Entity>(db, workspace_id, contact_id).await?;
    let to = EmailAddress::parse("email", person.email.as_deref().unwrap_or_default())?;
    // No name: whoever knows an address can sign it up and type any "name" (a link, a
    // lure), and this email must carry nothing a stranger chose.
    let greeting = "Hello".to_string();
    let mail = crate::platform::email::Outgoing {
        from: sender.clone(),
        from_name: None,
        to,
        subject: "Please confirm your subscription".into(),
        html: format!(
            "<p>{}</p><p>Please confirm that you want to receive our emails:</p>\
             <p><a href=\"{confirm_url}\">Confirm my subscription</a></p>\
             <p>If you did not ask for this, ignore this email.</p>",
            crate::platform::email::escape_html(&greeting)
        ),
        text: format!(
            "{greeting},\n\nPlease confirm that you want to receive our emails:\n{confirm_url}\n\n\
             If you did not ask for this, ignore this email.\n"
        ),
        key: format!(
            "consent-confirm/{workspace_id}/{contact_id}/{}/{request_id}",
            purpose.as_str()
        ),
        unsubscribe_url: None,
    };
    mailer.send(crate::platform::email::build(&mail)?).await?;
    Ok(None)
}
