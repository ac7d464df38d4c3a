//! Outbound webhooks on the graph (admins): register endpoints, read each one's delivery
//! log with every attempt, replay a delivery, send a test.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::integrations::webhooks::delivery::{self, State};
use rapport_engine::integrations::webhooks::{self, DeliveryRecord, EndpointInput, Settings};
use rapport_engine::values::{Scope, WebhookEventType};
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::context::principal;
use crate::graphql::ids::{parse_id, to_id};

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookDeliveryState {
    /// Waiting for its first attempt or its next retry.
    Pending,
    /// Being sent.
    Sending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed, or the endpoint answered 410 Gone.
    Failed,
}

impl From<State> for WebhookDeliveryState {
    fn from(s: State) -> Self {
        match s {
            State::Pending => Self::Pending,
            State::Sending => Self::Sending,
            State::Delivered => Self::Delivered,
            State::Failed => Self::Failed,
        }
    }
}

impl From<WebhookDeliveryState> for State {
    fn from(s: WebhookDeliveryState) -> Self {
        match s {
            WebhookDeliveryState::Pending => State::Pending,
            WebhookDeliveryState::Sending => State::Sending,
            WebhookDeliveryState::Delivered => State::Delivered,
            WebhookDeliveryState::Failed => State::Failed,
        }
    }
}

/// An URL that hears about changes.
pub struct WebhookEndpoint(pub s::webhook_endpoint::Model);

#[Object]
impl WebhookEndpoint {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// The event types it receives (`contact.created`, ...).
    async fn events(&self) -> Vec<&'static str> {
        webhooks::events_of(&self.0)
            .into_iter()
            .map(|e| e.as_str())
            .collect()
    }
    /// Whether it hears about changes; a disabled endpoint is owed nothing new, and what
    /// it was owed waits until it is enabled again.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why Rapport disabled it (410 Gone, or failing for days).
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// When its current run of failures began.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Its deliveries, newest first: `first` (1–200) of those older than `before` (a
    /// delivery id), optionally in one state.
    #[graphql(complexity = "50 * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        state: Option<WebhookDeliveryState>,
        before: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<WebhookDelivery>> {
        if !(1..=webhooks::MAX_PAGE as i32).contains(&first) {
            return Err(invalid(
                "first",
                format!("must be between 1 and {}", webhooks::MAX_PAGE),
            ));
        }
        let before = before.as_ref().map(|b| parse_id("before", b)).transpose()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let records = webhooks::deliveries(
            db,
            self.0.workspace_id,
            self.0.id,
            state.map(State::from),
            before,
            first as u64,
        )
        .await
        .gql()?;
        let ids: Vec<i64> = records.iter().map(|r| r.delivery.id).collect();
        let mut attempts = webhooks::attempts(db, self.0.workspace_id, &ids)
            .await
            .gql()?;
        Ok(records
            .into_iter()
            .map(|r| {
                let mine = attempts
                    .extract_if(.., |a| a.delivery_id == r.delivery.id)
                    .map(WebhookAttempt::from)
                    .collect();
                WebhookDelivery {
                    record: r,
                    attempts: Some(mine),
                }
            })
            .collect())
    }
}

/// One event owed to one endpoint.
pub struct WebhookDelivery {
    record: DeliveryRecord,
    /// Loaded with the page; a single delivery loads its own.
    attempts: Option<Vec<WebhookAttempt>>,
}

#[Object]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        to_id(self.record.delivery.id)
    }
    /// The `webhook-id` header: the event's, the same on every retry and replay.
    async fn message_id(&self) -> String {
        delivery::message_id(self.record.event.id)
    }
    async fn event_type(&self) -> &str {
        &self.record.event.event_type
    }
    /// What it is about, as `Typename:id`; deliveries keep order per subject.
    async fn subject(&self) -> &str {
        &self.record.event.subject
    }
    async fn state(&self) -> WebhookDeliveryState {
        State::from_db(&self.record.delivery.state).into()
    }
    /// Attempts made so far.
    async fn attempt_count(&self) -> i32 {
        self.record.delivery.attempts
    }
    /// When the next attempt is due (pending deliveries).
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (State::from_db(&self.record.delivery.state) == State::Pending)
            .then_some(self.record.delivery.next_attempt_at)
    }
    /// The HTTP status of the last attempt (none: no answer).
    async fn last_status(&self) -> Option<i32> {
        self.record.delivery.last_status
    }
    async fn last_error(&self) -> Option<&str> {
        self.record.delivery.last_error.as_deref()
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.record.delivery.delivered_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.record.delivery.created_at
    }
    /// The JSON body sent.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.record.event.payload.clone())
    }
    /// Every attempt, oldest first.
    async fn attempts(&self, ctx: &Context<'_>) -> Result<Vec<WebhookAttempt>> {
        if let Some(a) = &self.attempts {
            return Ok(a.clone());
        }
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let d = &self.record.delivery;
        Ok(webhooks::attempts(db, d.workspace_id, &[d.id])
            .await
            .gql()?
            .into_iter()
            .map(WebhookAttempt::from)
            .collect())
    }
}

/// One try of a delivery.
#[derive(SimpleObject, Clone)]
pub struct WebhookAttempt {
    attempted_at: DateTime<Utc>,
    /// The HTTP status answered (none: no answer).
    status: Option<i32>,
    /// From the request to the end of the answer's first bytes.
    latency_ms: i64,
    /// Why it failed.
    error: Option<String>,
    /// The start of the answer's body (500 bytes at most).
    response_excerpt: Option<String>,
}

impl From<s::webhook_attempt::Model> for WebhookAttempt {
    fn from(a: s::webhook_attempt::Model) -> Self {
        WebhookAttempt {
            attempted_at: a.attempted_at,
            status: a.status,
            latency_ms: a.latency_ms,
            error: a.error,
            response_excerpt: a.response_excerpt,
        }
    }
}

/// A new or re-keyed endpoint with its signing secret, shown only now.
#[derive(SimpleObject)]
pub struct WebhookEndpointWithSecret {
    endpoint: WebhookEndpoint,
    /// `whsec_…`: verify each delivery's `webhook-signature` with it (Standard Webhooks).
    secret: String,
}

impl From<webhooks::WithSecret> for WebhookEndpointWithSecret {
    fn from(w: webhooks::WithSecret) -> Self {
        WebhookEndpointWithSecret {
            endpoint: WebhookEndpoint(w.endpoint),
            secret: w.secret,
        }
    }
}

/// An endpoint to create or change (absent fields stay as they are).
#[derive(InputObject)]
pub struct WebhookEndpointInput {
    /// An http(s) URL on a public address.
    pub url: Option<String>,
    /// Event types (see `webhookEventTypes`).
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Enabling an endpoint Rapport disabled lets its waiting deliveries go.
    pub enabled: Option<bool>,
}

impl From<WebhookEndpointInput> for EndpointInput {
    fn from(i: WebhookEndpointInput) -> Self {
        EndpointInput {
            url: i.url,
            events: i.events,
            description: i.description,
            enabled: i.enabled,
        }
    }
}

fn admin<'a>(
    ctx: &Context<'a>,
) -> Result<(
    &'a rapport_engine::platform::auth::Principal,
    &'a DatabaseConnection,
)> {
    let who = principal(ctx)?;
    who.require(Scope::Admin).gql()?;
    Ok((who, ctx.data_unchecked::<DatabaseConnection>()))
}

/// Reading webhook endpoints (admins).
#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The workspace's webhook endpoints, oldest first.
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let (who, db) = admin(ctx)?;
        Ok(webhooks::list(db, who.workspace_id)
            .await
            .gql()?
            .into_iter()
            .map(WebhookEndpoint)
            .collect())
    }
    async fn webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        let (who, db) = admin(ctx)?;
        Ok(WebhookEndpoint(
            webhooks::get(db, who.workspace_id, parse_id("id", &id)?)
                .await
                .gql()?,
        ))
    }
    /// Every event type an endpoint can subscribe to.
    async fn webhook_event_types(&self) -> Vec<&'static str> {
        WebhookEventType::ALL
            .iter()
            .filter(|e| **e != WebhookEventType::WebhookTest)
            .map(|e| e.as_str())
            .collect()
    }
}

/// Managing webhook endpoints (admins).
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint; the answer holds its signing secret, shown only now. The URL
    /// must be http(s) on a public address (checked now, after DNS, and at every delivery).
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpointWithSecret> {
        let (who, db) = admin(ctx)?;
        let settings = ctx.data_unchecked::<Settings>();
        Ok(webhooks::create(db, who, settings, input.into())
            .await
            .gql()?
            .into())
    }
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookEndpointInput,
    ) -> Result<WebhookEndpoint> {
        let (who, db) = admin(ctx)?;
        let settings = ctx.data_unchecked::<Settings>();
        Ok(WebhookEndpoint(
            webhooks::update(db, who, settings, parse_id("id", &id)?, input.into())
                .await
                .gql()?,
        ))
    }
    /// Removes an endpoint with its log and what it was still owed.
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let (who, db) = admin(ctx)?;
        webhooks::delete(db, who, parse_id("id", &id)?)
            .await
            .gql()?;
        Ok(id)
    }
    /// Gives an endpoint a new signing secret; the old one stops at once.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<WebhookEndpointWithSecret> {
        let (who, db) = admin(ctx)?;
        Ok(webhooks::rotate_secret(db, who, parse_id("id", &id)?)
            .await
            .gql()?
            .into())
    }
    /// Sends a delivery's event again, as a new delivery with the same `webhook-id`.
    async fn replay_webhook_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let (who, db) = admin(ctx)?;
        let saved = webhooks::replay(db, who, parse_id("id", &id)?)
            .await
            .gql()?;
        one(db, who.workspace_id, saved).await
    }
    /// Sends a `webhook.test` event to an endpoint, delivered like any other.
    async fn send_test_webhook(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
    ) -> Result<WebhookDelivery> {
        let (who, db) = admin(ctx)?;
        let saved = webhooks::send_test(db, who, parse_id("endpointId", &endpoint_id)?)
            .await
            .gql()?;
        one(db, who.workspace_id, saved).await
    }
}

async fn one(
    db: &DatabaseConnection,
    ws: i64,
    delivery: s::webhook_delivery::Model,
) -> Result<WebhookDelivery> {
    use sea_orm::EntityTrait;
    let event = s::webhook_event::Entity::find_by_id(delivery.event_id)
        .one(db)
        .await
        .map_err(|e| crate::error::to_graphql(e.into()))?
        .filter(|e| e.workspace_id == ws)
        .ok_or_else(|| {
            crate::error::to_graphql(rapport_engine::EngineError::not_found(
                "webhook event",
                delivery.event_id,
            ))
        })?;
    Ok(WebhookDelivery {
        record: DeliveryRecord { delivery, event },
        attempts: Some(Vec::new()),
    })
}
