//! The actions plugins recommend for a contact (next best actions) as GraphQL objects:
//! what each asks for, its state and where it came from.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_schema as s;

use crate::graphql::ids::to_id;
use crate::graphql::plugins::{PluginKey, PluginRow, plugin_of, row, version_of};

/// What a recommended action asks for.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "rapport_plugins::ActionKind")]
pub enum ActionKind {
    SendEmail,
    CreateTask,
    Call,
    Offer,
    EnrollSequence,
    Custom,
}

impl ActionKind {
    /// The kind as stored (the WIT's spelling); unknown text reads as `Custom`.
    pub(super) fn from_text(s: &str) -> ActionKind {
        rapport_plugins::ActionKind::parse(s)
            .unwrap_or(rapport_plugins::ActionKind::Custom)
            .into()
    }
}

/// The state of a recommended action.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActionStatus {
    Open,
    Accepted,
    Rejected,
    /// A newer run of the plugin replaced it.
    Superseded,
}

/// A parameter of an action.
#[derive(SimpleObject)]
pub struct ActionParam {
    pub key: String,
    pub value: String,
}

/// An action a plugin recommends for a contact.
pub struct RecommendedAction(pub s::plugin_action::Model);

#[Object]
impl RecommendedAction {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ActionKind {
        ActionKind::from_text(&self.0.kind)
    }
    async fn params(&self) -> Vec<ActionParam> {
        serde_json::from_value::<Vec<(String, String)>>(self.0.params.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| ActionParam { key, value })
            .collect()
    }
    /// 0–100; higher first.
    async fn priority(&self) -> i32 {
        self.0.priority
    }
    async fn rationale(&self) -> &str {
        &self.0.rationale
    }
    async fn status(&self) -> ActionStatus {
        match self.0.status.as_str() {
            "accepted" => ActionStatus::Accepted,
            "rejected" => ActionStatus::Rejected,
            "superseded" => ActionStatus::Superseded,
            _ => ActionStatus::Open,
        }
    }
    /// Where it came from: `plugin-name@version`.
    async fn source(&self, ctx: &Context<'_>) -> Result<String> {
        let name = plugin_of(ctx, self.0.plugin_id)
            .await?
            .map(|p| p.name)
            .unwrap_or_default();
        let version = version_of(ctx, self.0.version_id)
            .await?
            .map_or(0, |v| v.version);
        Ok(format!("{name}@{version}"))
    }
    async fn contact_id(&self) -> ID {
        to_id(self.0.contact_id)
    }
    async fn computed_at(&self) -> DateTime<Utc> {
        self.0.computed_at
    }
    async fn responded_at(&self) -> Option<DateTime<Utc>> {
        self.0.responded_at
    }
    /// The API key that answered.
    async fn responded_by(&self) -> Option<ID> {
        self.0.responded_by.map(to_id)
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    /// The task accepting created, for `createTask` and `call` actions.
    async fn task_id(&self) -> Option<ID> {
        self.0
            .outcome
            .as_ref()
            .and_then(|o| o.get("taskId"))
            .and_then(|v| v.as_i64())
            .map(to_id)
    }
    /// The email accepting queued, for `sendEmail` actions (`transactionalEmail(id)`
    /// follows it).
    async fn message_id(&self) -> Option<ID> {
        self.0
            .outcome
            .as_ref()
            .and_then(|o| o.get("messageId"))
            .and_then(|v| v.as_i64())
            .map(to_id)
    }
}

/// A contact's open actions, from every enabled plugin, highest priority first.
pub async fn next_best_actions(
    ctx: &Context<'_>,
    contact_id: i64,
) -> Result<Vec<RecommendedAction>> {
    let Some(PluginRow::Actions(list)) = row(ctx, PluginKey::Actions(contact_id)).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for a in list {
        // Only actions of plugins still enabled are offered.
        if plugin_of(ctx, a.plugin_id)
            .await?
            .is_some_and(|p| p.enabled)
        {
            out.push(RecommendedAction(a));
        }
    }
    Ok(out)
}
