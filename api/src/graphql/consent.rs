//! Consent and the suppression list on the graph.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::values::{self, EmailAddress};
use rapport_engine::{engagement::consent, engagement::suppression, engagement::topics};
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, to_graphql};
use crate::graphql::batching::Dispatcher;
use crate::graphql::context::PublicUrl;
use crate::graphql::context::principal;
use crate::graphql::enums::{
    ConsentChannel, ConsentPurpose, ConsentStatus, LawfulBasis, SuppressionReason,
};
use crate::graphql::ids::{parse_id, to_id};

/// Each contact's consent history, one statement per batch.
pub struct ConsentOf {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<i64> for ConsentOf {
    type Value = Vec<s::consent_event::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        consent::history(&self.db, self.workspace_id, keys)
            .await
            .map_err(to_graphql)
    }
}

/// Adds the consent loader to one request.
pub fn attach(
    request: async_graphql::Request,
    d: &Dispatcher,
    db: &DatabaseConnection,
    workspace_id: i64,
) -> async_graphql::Request {
    let loader = ConsentOf {
        db: db.clone(),
        workspace_id,
    };
    request.data(DataLoader::new(loader, d.spawner()).delay(std::time::Duration::ZERO))
}

/// One recorded consent event.
pub struct ConsentRecord(pub s::consent_event::Model);

#[Object]
impl ConsentRecord {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn channel(&self) -> ConsentChannel {
        ConsentChannel::from_db(&self.0.channel)
    }
    async fn purpose(&self) -> ConsentPurpose {
        ConsentPurpose::from_db(&self.0.purpose)
    }
    async fn status(&self) -> ConsentStatus {
        ConsentStatus::from_db(&self.0.status)
    }
    async fn lawful_basis(&self) -> LawfulBasis {
        LawfulBasis::from_db(&self.0.lawful_basis)
    }
    /// Where it was given.
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// Proof: the address it came from.
    async fn ip(&self) -> Option<&str> {
        self.0.proof_ip.as_deref()
    }
    /// Proof: the browser.
    async fn user_agent(&self) -> Option<&str> {
        self.0.proof_user_agent.as_deref()
    }
    /// Proof: the form or page.
    async fn form(&self) -> Option<&str> {
        self.0.proof_form.as_deref()
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.0.recorded_at
    }
}

/// Whether an email may go to a contact now.
#[derive(SimpleObject)]
pub struct EmailPermission {
    pub allowed: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

async fn history_of(ctx: &Context<'_>, contact: i64) -> Result<Vec<s::consent_event::Model>> {
    Ok(ctx
        .data_unchecked::<DataLoader<ConsentOf>>()
        .load_one(contact)
        .await?
        .unwrap_or_default())
}

/// `contact.consent`: the current status per channel and purpose.
pub async fn current(ctx: &Context<'_>, contact: i64) -> Result<Vec<ConsentRecord>> {
    let history = history_of(ctx, contact).await?;
    Ok(consent::current(&history)
        .into_iter()
        .cloned()
        .map(ConsentRecord)
        .collect())
}

/// `contact.consentHistory`: every event, oldest first.
pub async fn history(ctx: &Context<'_>, contact: i64) -> Result<Vec<ConsentRecord>> {
    Ok(history_of(ctx, contact)
        .await?
        .into_iter()
        .map(ConsentRecord)
        .collect())
}

/// `contact.emailPermission(purpose)`.
pub async fn permission(
    ctx: &Context<'_>,
    contact: i64,
    purpose: ConsentPurpose,
) -> Result<EmailPermission> {
    let who = principal(ctx)?;
    let db = ctx.data_unchecked::<DatabaseConnection>();
    Ok(
        match consent::may_email(db, who.workspace_id, contact, purpose.into())
            .await
            .gql()?
        {
            consent::Decision::Allowed => EmailPermission {
                allowed: true,
                reason: None,
            },
            consent::Decision::Blocked(why) => EmailPermission {
                allowed: false,
                reason: Some(why),
            },
        },
    )
}

/// A consent event as a client reports it.
#[derive(InputObject)]
pub struct ConsentInput {
    #[graphql(default_with = "ConsentChannel::Email")]
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    pub status: ConsentStatus,
    #[graphql(default_with = "LawfulBasis::Consent")]
    pub lawful_basis: LawfulBasis,
    /// Where it was given (a form, an import, a call).
    pub source: Option<String>,
    /// Proof: the IP address it came from.
    pub ip: Option<String>,
    /// Proof: the browser's user agent.
    pub user_agent: Option<String>,
    /// Proof: the form or page.
    pub form: Option<String>,
}

/// A suppressed address (only its hash is kept).
pub struct Suppression(pub s::suppression::Model);

#[Object]
impl Suppression {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// SHA-256 of the lower-cased address.
    async fn email_hash(&self) -> &str {
        &self.0.email_hash
    }
    async fn reason(&self) -> SuppressionReason {
        SuppressionReason::from_db(&self.0.reason)
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Reads about consent and suppression.
#[derive(Default)]
pub struct ConsentQuery;

#[Object]
impl ConsentQuery {
    /// The workspace's email topics, by name.
    async fn email_topics(&self, ctx: &Context<'_>) -> Result<Vec<EmailTopic>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(topics::list(db, who.workspace_id)
            .await
            .gql()?
            .into_iter()
            .map(EmailTopic)
            .collect())
    }
    /// The suppression entry for an address, if it is suppressed.
    async fn suppression(&self, ctx: &Context<'_>, email: String) -> Result<Option<Suppression>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let email = EmailAddress::parse("email", &email).gql()?;
        Ok(suppression::lookup(db, who.workspace_id, &email)
            .await
            .gql()?
            .map(Suppression))
    }
    /// The newest suppressions first.
    async fn suppressions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<Suppression>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        if !(1..=500).contains(&first) {
            return Err(crate::error::invalid("first", "must be between 1 and 500"));
        }
        Ok(suppression::recent(db, who.workspace_id, first as u64)
            .await
            .gql()?
            .into_iter()
            .map(Suppression)
            .collect())
    }
}

/// One kind of marketing mail (newsletter, product updates) people may opt out of alone.
pub struct EmailTopic(pub s::email_topic::Model);

#[Object]
impl EmailTopic {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// How campaigns and sequences name it.
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
}

/// A contact's standing choice on one topic (subscribed until they opt out).
#[derive(SimpleObject)]
pub struct TopicPreference {
    pub topic: EmailTopic,
    pub subscribed: bool,
}

fn preferences(list: Vec<(s::email_topic::Model, bool)>) -> Vec<TopicPreference> {
    list.into_iter()
        .map(|(t, subscribed)| TopicPreference {
            topic: EmailTopic(t),
            subscribed,
        })
        .collect()
}

/// `contact.topicPreferences`.
pub async fn topic_preferences(ctx: &Context<'_>, contact: i64) -> Result<Vec<TopicPreference>> {
    let who = principal(ctx)?;
    let db = ctx.data_unchecked::<DatabaseConnection>();
    Ok(preferences(
        topics::preferences(db, who.workspace_id, contact)
            .await
            .gql()?,
    ))
}

/// `contact.preferencesUrl`: the contact's preference page (write scope: it changes
/// consent).
pub async fn preferences_url(ctx: &Context<'_>, contact: i64) -> Result<String> {
    let who = principal(ctx)?;
    let db = ctx.data_unchecked::<DatabaseConnection>();
    let token = topics::page_token(db, who, contact).await.gql()?;
    let base = &ctx.data_unchecked::<PublicUrl>().0;
    Ok(format!("{base}/preferences?token={token}"))
}

/// A topic as a client writes it.
#[derive(InputObject)]
pub struct EmailTopicInput {
    /// How campaigns and sequences name it (`newsletter`).
    pub key: String,
    /// How people read it on their preference page.
    pub name: Option<String>,
    pub description: Option<String>,
}

/// `contact.unsubscribeUrl(purpose)`.
pub async fn unsubscribe_url(
    ctx: &Context<'_>,
    contact: i64,
    purpose: ConsentPurpose,
) -> Result<String> {
    let who = principal(ctx)?;
    let db = ctx.data_unchecked::<DatabaseConnection>();
    let token = consent::unsubscribe_token(db, who, contact, purpose.into())
        .await
        .gql()?;
    let base = &ctx.data_unchecked::<PublicUrl>().0;
    Ok(format!("{base}/unsubscribe?token={token}"))
}

/// A double opt-in started.
#[derive(SimpleObject)]
pub struct ConsentRequest {
    /// The `pending` event recorded.
    pub consent: ConsentRecord,
    /// The link the person follows to confirm (valid 7 days).
    pub confirm_url: String,
    /// Whether the confirmation email went out (it does when the server has a mailer and
    /// transactional email may go to the contact).
    pub email_sent: bool,
    /// Why it did not, when it did not.
    pub not_sent_because: Option<String>,
}

/// Recording consent and managing the suppression list.
#[derive(Default)]
pub struct ConsentMutation;

#[Object]
impl ConsentMutation {
    /// Adds an email topic; campaigns (`topicId`) and sequences (`topic`) name it, and
    /// people choose it on their preference page.
    async fn create_email_topic(
        &self,
        ctx: &Context<'_>,
        input: EmailTopicInput,
    ) -> Result<EmailTopic> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(EmailTopic(
            topics::create(
                db,
                who,
                topics::TopicInput {
                    key: Some(input.key),
                    name: input.name,
                    description: input.description,
                },
            )
            .await
            .gql()?,
        ))
    }
    /// Records a contact's choice on one topic (by key), as told by the person; returns
    /// their choices on every topic.
    async fn set_topic_preference(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        topic: String,
        subscribed: bool,
    ) -> Result<Vec<TopicPreference>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let contact = parse_id("contactId", &contact_id)?;
        Ok(preferences(
            topics::set(db, who, contact, &topic, subscribed)
                .await
                .gql()?,
        ))
    }
    /// Appends a consent event to a contact's history; the latest event per channel and
    /// purpose is the current status.
    async fn record_consent(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        input: ConsentInput,
    ) -> Result<ConsentRecord> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let input = consent::ConsentInput {
            channel: Some(values::ConsentChannel::from(input.channel).as_str().into()),
            purpose: values::ConsentPurpose::from(input.purpose).as_str().into(),
            status: values::ConsentStatus::from(input.status).as_str().into(),
            lawful_basis: Some(
                values::LawfulBasis::from(input.lawful_basis)
                    .as_str()
                    .into(),
            ),
            source: input.source,
            ip: input.ip,
            user_agent: input.user_agent,
            form: input.form,
        };
        let contact_id = parse_id("contactId", &contact_id)?;
        // The consent event and its webhook event commit together.
        let tx = rapport_engine::platform::db::write(db)
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        let saved = consent::record(&tx, who, contact_id, input).await.gql()?;
        tx.commit()
            .await
            .map_err(|e| crate::error::to_graphql(e.into()))?;
        Ok(ConsentRecord(saved))
    }

    /// Starts a double opt-in: records `pending` and returns the signed confirmation link
    /// to send to the person; following it grants the consent, with its IP and browser
    /// kept as proof.
    async fn request_consent(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        #[graphql(default_with = "ConsentPurpose::Marketing")] purpose: ConsentPurpose,
        source: Option<String>,
    ) -> Result<ConsentRequest> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let contact = parse_id("contactId", &contact_id)?;
        // It emails the person: a member asks only their own contacts and nobody's.
        rapport_engine::platform::records::ensure_may_change::<rapport_schema::contact::Entity>(
            db, who, contact,
        )
        .await
        .gql()?;
        let (event, token) = consent::request(db, who, contact, purpose.into(), source)
            .await
            .gql()?;
        let base = &ctx.data_unchecked::<PublicUrl>().0;
        let confirm_url = format!("{base}/consent/confirm?token={token}");
        let not_sent_because = match ctx.data_unchecked::<Option<crate::graphql::context::Mail>>() {
            None => Some("this server has no mailer configured".to_string()),
            Some(mail) => {
                consent::send_confirmation(db, &mail.mailer, &mail.from, &event, &confirm_url)
                    .await
                    .gql()?
            }
        };
        Ok(ConsentRequest {
            consent: ConsentRecord(event),
            confirm_url,
            email_sent: not_sent_because.is_none(),
            not_sent_because,
        })
    }

    /// Puts an address on the suppression list: no marketing email will go to it.
    async fn suppress_email(
        &self,
        ctx: &Context<'_>,
        email: String,
        #[graphql(default_with = "SuppressionReason::Manual")] reason: SuppressionReason,
        note: Option<String>,
    ) -> Result<Suppression> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let email = EmailAddress::parse("email", &email).gql()?;
        Ok(Suppression(
            suppression::suppress(db, who, &email, reason.into(), note.as_deref())
                .await
                .gql()?,
        ))
    }

    /// Takes an address off the list (admin, unless it was a manual entry). Returns
    /// whether it was suppressed.
    async fn lift_suppression(&self, ctx: &Context<'_>, email: String) -> Result<bool> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let email = EmailAddress::parse("email", &email).gql()?;
        suppression::lift(db, who, &email).await.gql()
    }
}
