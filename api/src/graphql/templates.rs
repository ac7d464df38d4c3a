//! Email templates on the graph: saved after checking, previewed for any contact, and
//! sent to one contact at a time as transactional email.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::engagement::transactional;
use rapport_engine::platform::records::{self, Deleted};
use rapport_engine::values::{ConsentPurpose, Scope};
use rapport_engine::{engagement::consent, engagement::templates};
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::OrGraphql;
use crate::graphql::context::PublicUrl;
use crate::graphql::enums::{ConsentPurpose as Purpose, MessageState};
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::{Contact, load, principal};

/// A template as a client writes it (Jinja syntax; see `contact.*`, `company.*`,
/// `unsubscribe_url`).
#[derive(InputObject)]
pub struct EmailTemplateInput {
    pub name: Option<String>,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
}

impl From<EmailTemplateInput> for templates::EmailTemplateInput {
    fn from(i: EmailTemplateInput) -> Self {
        templates::EmailTemplateInput {
            name: i.name,
            subject: i.subject,
            html: i.html,
            text: i.text,
        }
    }
}

/// One transactional email to send.
#[derive(InputObject)]
pub struct SendEmailInput {
    pub contact_id: ID,
    pub template_id: ID,
    /// Whose consent rules apply: transactional mail needs no opt-in but stops at a
    /// withdrawal or a suppressed address; marketing needs a granted opt-in.
    #[graphql(default_with = "Purpose::Transactional")]
    pub purpose: Purpose,
    /// The client's key for this send (1–200 visible ASCII characters): the same key
    /// again returns the first message instead of sending another. Keys starting with
    /// `rapport:` are Rapport's own (the emails of accepted plugin actions).
    pub idempotency_key: String,
    pub from_email: String,
    pub from_name: Option<String>,
}

/// A transactional email: one message to one contact, asked for by an app.
pub struct TransactionalEmail {
    row: s::transactional_message::Model,
    replayed: bool,
}

#[Object]
impl TransactionalEmail {
    async fn id(&self) -> ID {
        to_id(self.row.id)
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.row.contact_id))
            .await?
            .map(Contact))
    }
    async fn template_id(&self) -> ID {
        to_id(self.row.template_id)
    }
    async fn idempotency_key(&self) -> &str {
        &self.row.idempotency_key
    }
    /// Whether this answer is the first send of its key (false) or a repeat (true).
    async fn replayed(&self) -> bool {
        self.replayed
    }
    async fn purpose(&self) -> Purpose {
        Purpose::from_db(&self.row.purpose)
    }
    /// QUEUED until a worker sends it; then SENT, SKIPPED (no consent, suppressed, no
    /// address), FAILED, BOUNCED or UNKNOWN (no answer from the mail server in time).
    async fn state(&self) -> MessageState {
        MessageState::from_db(&self.row.state)
    }
    /// Why it was skipped or failed.
    async fn reason(&self) -> Option<&str> {
        self.row.reason.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.row.sent_at
    }
    async fn opened_at(&self) -> Option<DateTime<Utc>> {
        self.row.opened_at
    }
    async fn clicked_at(&self) -> Option<DateTime<Utc>> {
        self.row.clicked_at
    }
    async fn opens(&self) -> i32 {
        self.row.opens
    }
    async fn clicks(&self) -> i32 {
        self.row.clicks
    }
}

/// An email as one contact would receive it.
#[derive(SimpleObject)]
pub struct RenderedEmail {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// A saved email template.
pub struct EmailTemplate(pub s::email_template::Model);

#[Object]
impl EmailTemplate {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    async fn html(&self) -> &str {
        &self.0.html
    }
    async fn text(&self) -> &str {
        &self.0.text
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The email rendered for one contact, with their real unsubscribe link when the key
    /// may write (a read key sees a placeholder: the link withdraws consent).
    async fn preview(&self, ctx: &Context<'_>, contact_id: ID) -> Result<RenderedEmail> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let contact = parse_id("contactId", &contact_id)?;
        let token = if who.can(Scope::Write) {
            consent::unsubscribe_token(db, who, contact, ConsentPurpose::Marketing)
                .await
                .gql()?
        } else {
            "preview-without-write-scope".to_string()
        };
        let base = &ctx.data_unchecked::<PublicUrl>().0;
        let url = format!("{base}/unsubscribe?token={token}");
        let preferences = if who.can(Scope::Write) {
            let token = rapport_engine::engagement::topics::page_token(db, who, contact)
                .await
                .gql()?;
            format!("{base}/preferences?token={token}")
        } else {
            format!("{base}/preferences?token=preview-without-write-scope")
        };
        let pages = templates::PageLinks {
            unsubscribe: &url,
            preferences: &preferences,
        };
        let out = templates::render_for(db, who.workspace_id, &self.0, contact, &pages)
            .await
            .gql()?;
        Ok(RenderedEmail {
            subject: out.subject,
            html: out.html,
            text: out.text,
        })
    }
}

/// Reading templates.
#[derive(Default)]
pub struct TemplateQuery;

#[Object]
impl TemplateQuery {
    async fn email_template(&self, ctx: &Context<'_>, id: ID) -> Result<EmailTemplate> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(EmailTemplate(
            records::get::<s::email_template::Entity>(db, who.workspace_id, parse_id("id", &id)?)
                .await
                .gql()?,
        ))
    }
    /// One transactional email, to follow it from queued to sent, opened and clicked.
    async fn transactional_email(&self, ctx: &Context<'_>, id: ID) -> Result<TransactionalEmail> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(TransactionalEmail {
            row: transactional::get(db, who, parse_id("id", &id)?)
                .await
                .gql()?,
            replayed: false,
        })
    }
    /// The variables a template may use (`contact.first_name`, …; `contact.attributes.*`
    /// stands for any custom attribute), for editors to offer.
    async fn email_template_variables(&self) -> Vec<String> {
        templates::variables()
    }
    /// A template not saved yet (an editor's draft), checked as saving would check it and
    /// rendered for one contact. Its links are placeholders: a preview changes nothing.
    /// Errors name the part (`field`) and, where known, the line (`extensions.line`).
    #[graphql(complexity = 2_000)]
    async fn preview_email_template(
        &self,
        ctx: &Context<'_>,
        input: EmailTemplateInput,
        contact_id: ID,
    ) -> Result<RenderedEmail> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let base = &ctx.data_unchecked::<PublicUrl>().0;
        let unsubscribe = format!("{base}/unsubscribe?token=preview");
        let preferences = format!("{base}/preferences?token=preview");
        let pages = templates::PageLinks {
            unsubscribe: &unsubscribe,
            preferences: &preferences,
        };
        let contact = parse_id("contactId", &contact_id)?;
        let out = templates::preview_draft(db, who, input.into(), contact, &pages)
            .await
            .gql()?;
        Ok(RenderedEmail {
            subject: out.subject,
            html: out.html,
            text: out.text,
        })
    }
    /// Every template, by name.
    async fn email_templates(&self, ctx: &Context<'_>) -> Result<Vec<EmailTemplate>> {
        use sea_orm::QueryOrder;
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            records::scoped::<s::email_template::Entity>(who.workspace_id, Deleted::Exclude)
                .order_by_asc(s::email_template::Column::Name)
                .order_by_asc(s::email_template::Column::Id)
                .all(db)
                .await
                .map_err(|e| crate::error::to_graphql(e.into()))?
                .into_iter()
                .map(EmailTemplate)
                .collect(),
        )
    }
}

/// Writing templates.
#[derive(Default)]
pub struct TemplateMutation;

#[Object]
impl TemplateMutation {
    /// Saves a template; one that does not parse or names an unknown variable is refused
    /// with the part and the variable named.
    async fn create_email_template(
        &self,
        ctx: &Context<'_>,
        input: EmailTemplateInput,
    ) -> Result<EmailTemplate> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(EmailTemplate(
            templates::create(db, who, input.into()).await.gql()?,
        ))
    }
    async fn update_email_template(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: EmailTemplateInput,
    ) -> Result<EmailTemplate> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(EmailTemplate(
            templates::update(db, who, parse_id("id", &id)?, input.into())
                .await
                .gql()?,
        ))
    }
    /// Sends one email from a saved template to one contact (a receipt, a welcome) through
    /// the job queue, under the consent rules of its purpose, with open and click
    /// tracking. The same idempotency key again returns the first message and sends
    /// nothing; under another contact or template it is a CONFLICT.
    async fn send_email(
        &self,
        ctx: &Context<'_>,
        input: SendEmailInput,
    ) -> Result<TransactionalEmail> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let queue = rapport_engine::platform::queue::Queue::new(db).gql()?;
        let queued = transactional::send(
            db,
            &queue,
            who,
            transactional::SendEmailInput {
                contact_id: parse_id("contactId", &input.contact_id)?,
                template_id: parse_id("templateId", &input.template_id)?,
                purpose: input.purpose.into(),
                idempotency_key: transactional::IdempotencyKey::parse(
                    "idempotencyKey",
                    &input.idempotency_key,
                )
                .gql()?,
                from_email: input.from_email,
                from_name: input.from_name,
            },
        )
        .await
        .gql()?;
        Ok(TransactionalEmail {
            row: queued.message,
            replayed: queued.replayed,
        })
    }
    /// Moves a template to the trash.
    async fn delete_email_template(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = principal(ctx)?;
        who.require(Scope::Write).gql()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        records::soft_delete::<s::email_template::Entity>(
            db,
            who.workspace_id,
            parse_id("id", &id)?,
        )
        .await
        .gql()?;
        Ok(id)
    }
}
