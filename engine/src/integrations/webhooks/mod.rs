//! Outbound webhooks: the endpoints a workspace registers, and what was delivered to them.
//!
//! An endpoint is a URL ([`targets`] decides which are allowed), the event types it
//! wants, and a signing secret shown once. Events are written by the rooms that change
//! things, through `platform::outbox`, in their own transactions; [`delivery`] sends them,
//! in order per endpoint and subject, signed the Standard Webhooks way, with retries.

pub mod delivery;
pub mod targets;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use rapport_schema::{webhook_attempt, webhook_delivery, webhook_endpoint, webhook_event};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::outbox::{self, Subject};
use crate::values::{Scope, WebhookEventType};

pub use delivery::Settings;
use targets::TargetUrl;

/// Endpoints one workspace may have.
pub const MAX_ENDPOINTS: u64 = 20;
/// The longest description.
pub const MAX_DESCRIPTION: usize = 500;
/// Deliveries one page of an endpoint's log holds at most.
pub const MAX_PAGE: u64 = 200;

/// What an admin gives to create or change an endpoint (`None`: unchanged).
#[derive(Clone, Debug, Default)]
pub struct EndpointInput {
    /// The http(s) URL.
    pub url: Option<String>,
    /// Event type names (`contact.created`, ...).
    pub events: Option<Vec<String>>,
    /// What it is for.
    pub description: Option<String>,
    /// Whether it hears about changes (a disabled endpoint is owed nothing new; what it
    /// was owed waits); enabling clears why it was disabled.
    pub enabled: Option<bool>,
}

/// An endpoint's input, parsed.
struct Parsed {
    url: Option<TargetUrl>,
    events: Option<Vec<WebhookEventType>>,
    description: Option<String>,
}

fn parse(input: &EndpointInput) -> Result<Parsed> {
    let url = input
        .url
        .as_deref()
        .map(|u| TargetUrl::parse("url", u))
        .transpose()?;
    let events = match &input.events {
        None => None,
        Some(names) => {
            if names.is_empty() {
                return Err(EngineError::invalid(
                    "events",
                    "name at least one event type",
                ));
            }
            if names.len() > WebhookEventType::ALL.len() {
                return Err(EngineError::invalid(
                    "events",
                    format!("at most {} event types", WebhookEventType::ALL.len()),
                ));
            }
            let mut out = Vec::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                let kind = WebhookEventType::parse(&format!("events[{i}]"), name)?;
                if kind == WebhookEventType::WebhookTest {
                    return Err(EngineError::invalid(
                        format!("events[{i}]"),
                        "test deliveries reach every endpoint; there is no need to subscribe",
                    ));
                }
                if !out.contains(&kind) {
                    out.push(kind);
                }
            }
            Some(out)
        }
    };
    let description = match &input.description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => {
            return Err(EngineError::invalid(
                "description",
                format!("at most {MAX_DESCRIPTION} characters"),
            ));
        }
        Some(d) if d.chars().any(char::is_control) => {
            return Err(EngineError::invalid(
                "description",
                "must not contain control characters",
            ));
        }
        other => other.as_ref().map(|d| d.trim().to_string()),
    };
    Ok(Parsed {
        url,
        events,
        description,
    })
}

/// A new signing secret: `whsec_` and 24 random bytes in base64 (Standard Webhooks).
pub fn new_secret() -> String {
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", STANDARD.encode(key))
}

/// An endpoint with its secret, which is shown only now.
pub struct WithSecret {
    /// The endpoint.
    pub endpoint: webhook_endpoint::Model,
    /// Its signing secret.
    pub secret: String,
}

/// Registers an endpoint (admins).
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    settings: &Settings,
    input: EndpointInput,
) -> Result<WithSecret> {
    who.require(Scope::Admin)?;
    let p = parse(&input)?;
    let Some(url) = p.url else {
        return Err(EngineError::invalid("url", "is required"));
    };
    let Some(events) = p.events else {
        return Err(EngineError::invalid("events", "is required"));
    };
    targets::check_target("url", &url, settings.allow_private).await?;
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let count = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(ws))
        .count(&tx)
        .await?;
    if count >= MAX_ENDPOINTS {
        return Err(EngineError::invalid(
            "url",
            format!("a workspace has at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let secret = new_secret();
    let now = clock::now();
    let endpoint = webhook_endpoint::ActiveModel {
        workspace_id: Set(ws),
        url: Set(url.as_str().to_string()),
        description: Set(p.description.unwrap_or_default()),
        events: Set(json!(
            events
                .iter()
                .map(WebhookEventType::as_str)
                .collect::<Vec<_>>()
        )),
        secret: Set(secret.clone()),
        enabled: Set(input.enabled.unwrap_or(true)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    Ok(WithSecret { endpoint, secret })
}

/// Changes an endpoint (admins). Enabling one Rapport disabled clears the reason and
/// lets its waiting deliveries go.
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    settings: &Settings,
    id: i64,
    input: EndpointInput,
) -> Result<webhook_endpoint::Model> {
    who.require(Scope::Admin)?;
    let p = parse(&input)?;
    if let Some(url) = &p.url {
        targets::check_target("url", url, settings.allow_private).await?;
    }
    let tx = crate::platform::db::write(db).await?;
    let current = get(&tx, who.workspace_id, id).await?;
    let mut am: webhook_endpoint::ActiveModel = current.into();
    if let Some(url) = p.url {
        am.url = Set(url.as_str().to_string());
    }
    if let Some(events) = p.events {
        am.events = Set(json!(
            events
                .iter()
                .map(WebhookEventType::as_str)
                .collect::<Vec<_>>()
        ));
    }
    if let Some(d) = p.description {
        am.description = Set(d);
    }
    if let Some(enabled) = input.enabled {
        am.enabled = Set(enabled);
        if enabled {
            am.disabled_reason = Set(None);
            am.failing_since = Set(None);
        }
    }
    am.updated_at = Set(clock::now());
    let saved = am.update(&tx).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Gives an endpoint a new signing secret (admins); the old one stops signing at once.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
) -> Result<WithSecret> {
    who.require(Scope::Admin)?;
    let tx = crate::platform::db::write(db).await?;
    let current = get(&tx, who.workspace_id, id).await?;
    let secret = new_secret();
    let mut am: webhook_endpoint::ActiveModel = current.into();
    am.secret = Set(secret.clone());
    am.updated_at = Set(clock::now());
    let endpoint = am.update(&tx).await?;
    tx.commit().await?;
    Ok(WithSecret { endpoint, secret })
}

/// Removes an endpoint with its log and whatever it was still owed (admins).
pub async fn delete(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<()> {
    who.require(Scope::Admin)?;
    let tx = crate::platform::db::write(db).await?;
    get(&tx, who.workspace_id, id).await?;
    webhook_endpoint::Entity::delete_by_id(id).exec(&tx).await?;
    tx.commit().await?;
    Ok(())
}

/// One endpoint of the workspace.
pub async fn get(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<webhook_endpoint::Model> {
    webhook_endpoint::Entity::find_by_id(id)
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("webhook endpoint", id))
}

/// The workspace's endpoints, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<webhook_endpoint::Model>> {
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(webhook_endpoint::Column::Id)
        .limit(MAX_ENDPOINTS)
        .all(db)
        .await?)
}

/// The event types an endpoint receives.
pub fn events_of(endpoint: &webhook_endpoint::Model) -> Vec<WebhookEventType> {
    WebhookEventType::ALL
        .iter()
        .copied()
        .filter(|e| outbox::subscribed(&endpoint.events, *e))
        .collect()
}

/// A delivery with the event it carries.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    /// The delivery.
    pub delivery: webhook_delivery::Model,
    /// Its event.
    pub event: webhook_event::Model,
}

/// An endpoint's deliveries, newest first, `first` of them before `before` (an id),
/// optionally only those in one state.
pub async fn deliveries(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    endpoint_id: i64,
    state: Option<delivery::State>,
    before: Option<i64>,
    first: u64,
) -> Result<Vec<DeliveryRecord>> {
    let mut q = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(s) = state {
        q = q.filter(webhook_delivery::Column::State.eq(s.as_str()));
    }
    if let Some(b) = before {
        q = q.filter(webhook_delivery::Column::Id.lt(b));
    }
    let rows = q
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(first.min(MAX_PAGE))
        .all(db)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|d| d.event_id).collect();
    let events: std::collections::HashMap<i64, webhook_event::Model> =
        webhook_event::Entity::find()
            .filter(webhook_event::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    Ok(rows
        .into_iter()
        .filter_map(|d| {
            let event = events.get(&d.event_id)?.clone();
            Some(DeliveryRecord { delivery: d, event })
        })
        .collect())
}

/// The attempts of some deliveries, oldest first.
pub async fn attempts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    delivery_ids: &[i64],
) -> Result<Vec<webhook_attempt::Model>> {
    Ok(webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook_attempt::Column::DeliveryId.is_in(delivery_ids.iter().copied()))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(db)
        .await?)
}

/// Delivers an event again to the endpoint of one of its deliveries (admins), as a new
/// delivery with the same `webhook-id`, so a receiver that already has it can tell.
pub async fn replay(
    db: &DatabaseConnection,
    who: &Principal,
    delivery_id: i64,
) -> Result<webhook_delivery::Model> {
    who.require(Scope::Admin)?;
    let tx = crate::platform::db::write(db).await?;
    let old = webhook_delivery::Entity::find_by_id(delivery_id)
        .filter(webhook_delivery::Column::WorkspaceId.eq(who.workspace_id))
        .one(&tx)
        .await?
        .ok_or_else(|| EngineError::not_found("webhook delivery", delivery_id))?;
    let now = clock::now();
    let saved = webhook_delivery::ActiveModel {
        workspace_id: Set(old.workspace_id),
        endpoint_id: Set(old.endpoint_id),
        event_id: Set(old.event_id),
        subject: Set(old.subject),
        state: Set(delivery::State::Pending.as_str().into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    tx.commit().await?;
    Ok(saved)
}

/// Sends a `webhook.test` event to one endpoint (admins), delivered like any other.
pub async fn send_test(
    db: &DatabaseConnection,
    who: &Principal,
    endpoint_id: i64,
) -> Result<webhook_delivery::Model> {
    who.require(Scope::Admin)?;
    let tx = crate::platform::db::write(db).await?;
    let endpoint = get(&tx, who.workspace_id, endpoint_id).await?;
    let now: DateTime<Utc> = clock::now();
    let event = outbox::emit_to(
        &tx,
        who.workspace_id,
        WebhookEventType::WebhookTest,
        Subject {
            typename: "WebhookEndpoint",
            id: endpoint.id,
        },
        json!({ "object": outbox::object("WebhookEndpoint", &json!({"id": endpoint.id, "url": endpoint.url})),
                "message": "A test delivery from Rapport." }),
        &[endpoint.id],
        now,
    )
    .await?;
    let saved = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EventId.eq(event.id))
        .one(&tx)
        .await?
        .ok_or_else(|| EngineError::internal("the test delivery was not written"))?;
    tx.commit().await?;
    Ok(saved)
}
