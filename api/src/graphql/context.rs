//! What every resolver reads from a request's context: the caller, the moment the
//! request describes, rows through the request's batch loader, and the server's public
//! address and mail settings. The bottom of the GraphQL modules: it uses none of them but
//! the loaders.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Result};
use rapport_engine::platform::auth::Principal;
use rapport_engine::platform::records::Record;
use sea_orm::ModelTrait;

use crate::graphql::loaders::ById;

/// Where this server is reached from outside, for links in emails (no trailing slash).
#[derive(Clone, Debug)]
pub struct PublicUrl(pub String);

/// Where email goes and who it is from.
#[derive(Clone, Debug)]
pub struct Mail {
    /// SMTP or an outbox directory.
    pub mailer: rapport_engine::platform::email::Mailer,
    /// The sender address.
    pub from: rapport_engine::values::EmailAddress,
}

/// The caller of this request.
pub fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal> {
    ctx.data::<Principal>()
}

/// Loads a referenced row through the request's batch loader.
pub async fn load<E>(ctx: &Context<'_>, id: Option<i64>) -> Result<Option<E::Model>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    match id {
        None => Ok(None),
        Some(id) => {
            ctx.data_unchecked::<DataLoader<ById<E>>>()
                .load_one(id)
                .await
        }
    }
}

/// The moment a request describes: values computed from the time use it, not the time
/// each resolver happens to run.
#[derive(Clone, Copy, Debug)]
pub struct AsOf(pub chrono::DateTime<chrono::Utc>);

/// The moment the request describes (now, outside a request).
pub fn as_of(ctx: &Context<'_>) -> chrono::DateTime<chrono::Utc> {
    ctx.data_opt::<AsOf>()
        .map_or_else(rapport_engine::clock::now, |a| a.0)
}
