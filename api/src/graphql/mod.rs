//! The GraphQL schema of the CRM graph.

pub mod audiences;
pub mod batching;
pub mod campaigns;
pub mod connection;
pub mod consent;
pub mod enums;
pub mod filters;
pub mod ids;
pub mod inputs;
pub mod intelligence;
pub mod loaders;
pub mod mutations;
pub mod queries;
pub mod reports;
pub mod templates;
pub mod types;

use crate::keys::VerifiedKeys;
use async_graphql::{EmptySubscription, MergedObject, Schema};
use sea_orm::DatabaseConnection;
use std::sync::Arc;

/// Where this server is reached from outside, for links in emails (no trailing slash).
#[derive(Clone, Debug)]
pub struct PublicUrl(pub String);

/// Where email goes and who it is from.
#[derive(Clone, Debug)]
pub struct Mail {
    /// SMTP or an outbox directory.
    pub mailer: rapport_engine::email::Mailer,
    /// The sender address.
    pub from: rapport_engine::values::EmailAddress,
}

/// Every read: the CRM graph and the models.
#[derive(MergedObject, Default)]
pub struct Queries(
    queries::Query,
    intelligence::IntelligenceQuery,
    reports::ReportsQuery,
    consent::ConsentQuery,
    audiences::SegmentQuery,
    templates::TemplateQuery,
    campaigns::CampaignQuery,
);

/// Every write.
#[derive(MergedObject, Default)]
pub struct Mutations(
    mutations::Mutation,
    intelligence::IntelligenceMutation,
    consent::ConsentMutation,
    audiences::SegmentMutation,
    templates::TemplateMutation,
    campaigns::CampaignMutation,
);

/// Rapport's schema type.
pub type RapportSchema = Schema<Queries, Mutations, EmptySubscription>;

/// Builds the schema over `db`. Depth and complexity are bounded so one request cannot
/// ask for an unbounded amount of work.
pub fn build(
    db: DatabaseConnection,
    keys: Arc<VerifiedKeys>,
    public: PublicUrl,
    mail: Option<Mail>,
) -> RapportSchema {
    Schema::build(Queries::default(), Mutations::default(), EmptySubscription)
        .data(db)
        .data(keys)
        .data(public)
        .data(mail)
        .limit_depth(16)
        .limit_complexity(20_000)
        .finish()
}

/// The SDL of the schema, as exported to `schema/rapport.graphql`.
pub fn sdl() -> String {
    Schema::build(Queries::default(), Mutations::default(), EmptySubscription)
        .finish()
        .sdl()
}
