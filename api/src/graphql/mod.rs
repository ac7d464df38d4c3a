//! The GraphQL schema of the CRM graph.
//!
//! Its modules are in layers, each using only the ones before it (`api/tests/layers.rs`
//! checks this):
//! 1. what every resolver stands on: `context` (the caller, the request's moment, loads
//!    through the batch loader), `ids`, `enums`, `batching`, `loaders`, `connection`,
//!    `cost_budget`, `filters`, `inputs`;
//! 2. the facts about a contact that other rooms keep, which the CRM objects show and
//!    which show no CRM object: `consent`, `intelligence`, `plugins`, `plugin_runs`;
//! 3. `types`: every object of the CRM graph, with the sequence objects (an enrollment
//!    shows its contact, a contact its enrollments);
//! 4. the root fields: `queries`, `mutations`, `audiences`, `campaigns`, `capture`,
//!    `sequences`, `templates`, `trainings`, `imports`, `reports`, `people`, `plugin_inputs`, `webhooks`,
//!    `audit` (the audit log, and the mutation root's wrapper that records mutations), `live` (the
//!    subscriptions), and this module, which merges them.

pub mod audiences;
pub mod audit;
pub mod batching;
pub mod campaigns;
pub mod capture;
pub mod connection;
pub mod consent;
pub mod context;
pub mod cost_budget;
pub mod enums;
pub mod fields;
pub mod filters;
pub mod ids;
pub mod imports;
pub mod inputs;
pub mod intelligence;
pub mod live;
pub mod loaders;
pub mod mutations;
pub mod orders;
pub mod people;
pub mod plugin_actions;
pub mod plugin_inputs;
pub mod plugin_quality;
pub mod plugin_runs;
pub mod plugin_scores;
pub mod plugins;
pub mod queries;
pub mod reports;
pub mod sequences;
pub mod templates;
pub mod trainings;
pub mod types;
pub mod webhooks;

use crate::keys::VerifiedKeys;
use async_graphql::{MergedObject, Schema};
use sea_orm::DatabaseConnection;
use std::sync::Arc;

pub use context::{Mail, PublicUrl};

/// Every read: the CRM graph and the models.
#[derive(MergedObject, Default)]
pub struct Queries(
    queries::Query,
    intelligence::IntelligenceQuery,
    reports::ReportsQuery,
    consent::ConsentQuery,
    audiences::SegmentQuery,
    templates::TemplateQuery,
    fields::FieldQuery,
    campaigns::CampaignQuery,
    plugins::PluginQuery,
    sequences::SequenceQuery,
    capture::CaptureQuery,
    people::PeopleQuery,
    trainings::TrainingQuery,
    imports::ImportQuery,
    webhooks::WebhookQuery,
    audit::AuditQuery,
);

/// Every write.
#[derive(MergedObject, Default)]
pub struct Mutations(
    mutations::Mutation,
    intelligence::IntelligenceMutation,
    consent::ConsentMutation,
    audiences::SegmentMutation,
    templates::TemplateMutation,
    fields::FieldMutation,
    campaigns::CampaignMutation,
    plugins::PluginMutation,
    plugin_quality::PluginShadowMutation,
    sequences::SequenceMutation,
    capture::CaptureMutation,
    people::PeopleMutation,
    trainings::TrainingMutation,
    imports::ImportMutation,
    webhooks::WebhookMutation,
);

/// Rapport's schema type.
pub type RapportSchema = Schema<Queries, audit::Audited<Mutations>, live::LiveSubscription>;

/// The most one request may cost: each field costs 1, a list field its page size times
/// what each row selects (see [`connection::page_cost`]), aliases count separately. About
/// as many values as a response of a few tens of megabytes holds.
pub const MAX_COMPLEXITY: usize = 100_000;

/// The most a plugin's batched input query may cost (a batch of many contacts may cost up
/// to 200,000).
pub const PLUGIN_INPUT_MAX_COMPLEXITY: usize = 250_000;

/// What the schema's resolvers use besides the database and keys: the mail transport,
/// the plugin host, the clock, and the webhook settings.
pub struct Services {
    /// Where the API's own email goes (invitations, resets, test sends).
    pub mail: Option<Mail>,
    /// With a host, plugins can be registered and run.
    pub plugins: Option<rapport_engine::intelligence::plugins::Host>,
    /// The time.
    pub clock: Arc<dyn rapport_engine::clock::Clock>,
    /// Which webhook targets are allowed.
    pub webhooks: rapport_engine::integrations::webhooks::Settings,
    /// The changes subscriptions follow.
    pub live: rapport_engine::platform::live::Live,
}

/// Builds the schema over `db`. Depth and complexity are bounded so one request cannot
/// ask for an unbounded amount of work.
pub fn build(
    db: DatabaseConnection,
    keys: Arc<VerifiedKeys>,
    public: PublicUrl,
    services: Services,
    budget: cost_budget::CostBudget,
) -> RapportSchema {
    builder(db, keys, public, services.mail)
        .data(services.plugins)
        .data(services.clock)
        .data(services.webhooks)
        .data(services.live)
        .extension(budget)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema plugins' input queries run on: the same graph, reporting each document's
/// complexity (a batch of many contacts may cost up to 200,000).
pub fn build_for_plugins(
    db: DatabaseConnection,
    keys: Arc<VerifiedKeys>,
    public: PublicUrl,
) -> RapportSchema {
    builder(db, keys, public, None)
        .data(None::<rapport_engine::intelligence::plugins::Host>)
        .data(rapport_engine::clock::system())
        .data(rapport_engine::integrations::webhooks::Settings::new())
        .extension(async_graphql::extensions::Analyzer)
        .limit_complexity(PLUGIN_INPUT_MAX_COMPLEXITY)
        .finish()
}

fn builder(
    db: DatabaseConnection,
    keys: Arc<VerifiedKeys>,
    public: PublicUrl,
    mail: Option<Mail>,
) -> async_graphql::SchemaBuilder<Queries, audit::Audited<Mutations>, live::LiveSubscription> {
    Schema::build(
        Queries::default(),
        audit::Audited(Mutations::default()),
        live::LiveSubscription,
    )
    .data(db)
    .data(keys)
    .data(campaigns::TestSendBudget::default())
    .data(public)
    .data(mail)
    .limit_depth(16)
}

/// A plugin host for `db`: compiled components cached in `cache_dir`, input queries run
/// on their own schema instance.
pub fn plugin_host(
    db: &DatabaseConnection,
    keys: Arc<VerifiedKeys>,
    public: PublicUrl,
    cache_dir: Option<std::path::PathBuf>,
) -> rapport_engine::Result<rapport_engine::intelligence::plugins::Host> {
    let runtime = rapport_engine::intelligence::plugins::Runtime::new(cache_dir).map_err(|e| {
        tracing::error!(error = %e, "the plugin host could not start");
        rapport_engine::EngineError::internal(format!("the plugin host could not start: {e}"))
    })?;
    let schema = build_for_plugins(db.clone(), keys, public);
    Ok(rapport_engine::intelligence::plugins::Host {
        runtime,
        inputs: Arc::new(plugin_inputs::GraphqlInputs::new(schema, db.clone())),
        capture: Default::default(),
        backtests: Default::default(),
    })
}

/// Gives a request its caller and its batch loaders; drive its execution with the
/// returned dispatcher so the loaders' batches go out when the resolvers are blocked.
pub fn with_loaders(
    request: async_graphql::Request,
    db: &DatabaseConnection,
    principal: rapport_engine::platform::auth::Principal,
) -> (async_graphql::Request, batching::Dispatcher) {
    let ws = principal.workspace_id;
    let dispatcher = batching::Dispatcher::default();
    // One "now" per request, so every value computed from the time (a customer's
    // P(alive), churn risk, expected purchases) describes the same moment.
    let request = request.data(context::AsOf(rapport_engine::clock::now()));
    let request = loaders::attach(request.data(principal), &dispatcher, db, ws);
    let request = intelligence::attach(request, &dispatcher, db, ws);
    let request = consent::attach(request, &dispatcher, db, ws);
    let request = plugins::attach(request, &dispatcher, db, ws);
    (request, dispatcher)
}

/// The SDL of the schema, as exported to `schema/rapport.graphql`.
pub fn sdl() -> String {
    Schema::build(
        Queries::default(),
        audit::Audited(Mutations::default()),
        live::LiveSubscription,
    )
    .finish()
    .sdl()
}
