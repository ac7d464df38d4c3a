//! Lead capture on the graph: publishable ingest keys (admin) and the sign-up forms
//! Rapport hosts. What they capture arrives over `/capture/v1` and `/f/<id>`
//! ([`crate::capture`]), never through GraphQL: an ingest key is not an API key.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::engagement::capture::{forms, keys};
use rapport_engine::engagement::topics;
use rapport_schema::{capture_form, ingest_key};
use sea_orm::DatabaseConnection;

use crate::error::OrGraphql;
use crate::graphql::PublicUrl;
use crate::graphql::consent::EmailTopic;
use crate::graphql::enums::FormField;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::principal;

/// A publishable key a website embeds to capture leads from the origins it names.
pub struct IngestKey {
    row: ingest_key::Model,
    origins: Vec<String>,
}

#[Object]
impl IngestKey {
    async fn id(&self) -> ID {
        to_id(self.row.id)
    }
    async fn name(&self) -> &str {
        &self.row.name
    }
    /// The start of the key (`pk_<prefix>_…`), to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.row.prefix
    }
    /// The web origins (`https://shop.example`) whose pages may use it.
    async fn allowed_origins(&self) -> &[String] {
        &self.origins
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.row.revoked_at
    }
}

/// A key just created, with the only copy of it there will be.
#[derive(SimpleObject)]
pub struct IssuedIngestKey {
    /// The key's record.
    pub ingest_key: IngestKey,
    /// The whole key (`pk_…`), for the website's pages.
    pub key: String,
}

/// A sign-up form Rapport hosts.
pub struct CaptureForm(pub capture_form::Model);

#[Object]
impl CaptureForm {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The heading visitors read.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// Fields asked besides the email address.
    async fn fields(&self) -> Vec<FormField> {
        forms::fields_of(&self.0)
            .into_iter()
            .map(Into::into)
            .collect()
    }
    /// The topic a sign-up subscribes to.
    async fn topic(&self, ctx: &Context<'_>) -> Result<Option<EmailTopic>> {
        let Some(id) = self.0.topic_id else {
            return Ok(None);
        };
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(Some(EmailTopic(
            topics::get(db, self.0.workspace_id, id).await.gql()?,
        )))
    }
    /// Whether marketing consent waits for the emailed confirmation.
    async fn double_opt_in(&self) -> bool {
        self.0.double_opt_in
    }
    /// What visitors read once they sent it.
    async fn success_message(&self) -> &str {
        &self.0.success_message
    }
    /// The form's public page, to link to or embed.
    async fn url(&self, ctx: &Context<'_>) -> String {
        format!(
            "{}/f/{}",
            ctx.data_unchecked::<PublicUrl>().0,
            self.0.public_id
        )
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it stopped taking sign-ups.
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
}

/// A sign-up form as a client describes it.
#[derive(InputObject)]
pub struct CaptureFormInput {
    /// How the team names it.
    pub name: String,
    /// The heading visitors read (the name by default).
    pub title: Option<String>,
    /// Fields asked besides the email address.
    #[graphql(default)]
    pub fields: Vec<FormField>,
    /// The email topic a sign-up subscribes to.
    pub topic_id: Option<ID>,
    /// Whether consent waits for the emailed confirmation (default true).
    pub double_opt_in: Option<bool>,
    /// What visitors read once they sent it.
    pub success_message: Option<String>,
}

/// Reading ingest keys and forms.
#[derive(Default)]
pub struct CaptureQuery;

#[Object]
impl CaptureQuery {
    /// The workspace's ingest keys, newest first (admin).
    async fn ingest_keys(&self, ctx: &Context<'_>) -> Result<Vec<IngestKey>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(keys::list(db, who)
            .await
            .gql()?
            .into_iter()
            .map(|(row, origins)| IngestKey { row, origins })
            .collect())
    }

    /// The workspace's sign-up forms, newest first.
    async fn capture_forms(&self, ctx: &Context<'_>) -> Result<Vec<CaptureForm>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(forms::list(db, who)
            .await
            .gql()?
            .into_iter()
            .map(CaptureForm)
            .collect())
    }
}

/// Changing ingest keys and forms.
#[derive(Default)]
pub struct CaptureMutation;

#[Object]
impl CaptureMutation {
    /// Creates a publishable ingest key for a website's pages at `allowedOrigins` (admin).
    /// It can only identify or create contacts by email, track their events and ask for
    /// double opt-in, from those origins; it reads nothing.
    async fn create_ingest_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        allowed_origins: Vec<String>,
    ) -> Result<IssuedIngestKey> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let issued = keys::create(db, who, &name, &allowed_origins).await.gql()?;
        Ok(IssuedIngestKey {
            ingest_key: IngestKey {
                row: issued.record,
                origins: issued.origins,
            },
            key: issued.key,
        })
    }

    /// Revokes an ingest key (admin). Returns whether it was live.
    async fn revoke_ingest_key(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        keys::revoke(db, who, parse_id("id", &id)?).await.gql()
    }

    /// Creates a hosted sign-up form.
    async fn create_capture_form(
        &self,
        ctx: &Context<'_>,
        input: CaptureFormInput,
    ) -> Result<CaptureForm> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let topic_id = input
            .topic_id
            .as_ref()
            .map(|t| parse_id("input.topicId", t))
            .transpose()?;
        let input = forms::FormInput {
            name: input.name,
            title: input.title,
            fields: input
                .fields
                .into_iter()
                .map(|f| {
                    rapport_engine::values::FormField::from(f)
                        .as_str()
                        .to_string()
                })
                .collect(),
            topic_id,
            double_opt_in: input.double_opt_in,
            success_message: input.success_message,
        };
        Ok(CaptureForm(forms::create(db, who, input).await.gql()?))
    }

    /// Closes a form: its page stops taking sign-ups.
    async fn archive_capture_form(&self, ctx: &Context<'_>, id: ID) -> Result<CaptureForm> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(CaptureForm(
            forms::archive(db, who, parse_id("id", &id)?).await.gql()?,
        ))
    }
}
