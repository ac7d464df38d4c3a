//! Rapport's own next best actions, so sales gets them without a developer: a built-in
//! rule set that runs as the workspace's plugin `rapport` — a version with no component,
//! answered natively — beside any uploaded plugin, through the same input query, runs,
//! stored actions, accepting and acceptance figures.
//!
//! - An open deal whose contact has had no touch for [`STALE_DAYS`] days → call about it.
//! - A hot lead (grade A) nobody owns → a task to assign an owner.
//! - A customer whose churn risk is high → a win-back call.
//!
//! Plugins add to it; an uploaded plugin's open action of the same kind for the same
//! contact hides the built-in one ([`super::actions::open_for`]); disabling `rapport`
//! turns the rules off.

use rapport_plugins::{Action, ActionKind, Attempt, Error, Input, Limits, Loaded};
use rapport_schema::{plugin, plugin_version};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::Value;

use super::Host;
use super::registry::{self, DEFAULT_FAILURE_THRESHOLD, record_event};
use crate::clock;
use crate::error::Result;

/// The built-in rules' plugin name, kept from uploads.
pub const NAME: &str = "rapport";
/// What stands in a version's component hash for the built-in rules.
pub const COMPONENT: &str = "builtin:rules@1";
/// Days without a touch after which an open deal is stale.
pub const STALE_DAYS: f64 = 14.0;
/// What the rules read about a contact.
pub const QUERY: &str = "query Input($contactId: ID!, $asOf: DateTime) {
  contact(id: $contactId) {
    name
    lifecycleStage
    owner { id }
    leadScore { grade }
    churnRisk { level }
    deals(first: 5, filter: {status: {eq: OPEN}}) { edges { node { id name } } }
    activities(first: 1, filter: {occurredAt: {lt: $asOf}}, orderBy: [{field: OCCURRED_AT, direction: DESC}]) {
      edges { node { occurredAt } }
    }
  }
}";
/// The query's cost, as the schema's complexity counts it (well inside a batch).
const COST: i32 = 120;

/// Whether a version is the built-in rules.
pub fn is_builtin(v: &plugin_version::Model) -> bool {
    v.wasm_sha256 == COMPONENT
}

/// Creates the workspace's `rapport` plugin with the rules as its version, where missing.
pub async fn ensure(db: &DatabaseConnection, workspace_id: i64) -> Result<()> {
    let exists = |db| async move {
        Ok::<bool, crate::EngineError>(
            plugin::Entity::find()
                .filter(plugin::Column::WorkspaceId.eq(workspace_id))
                .filter(plugin::Column::Name.eq(NAME))
                .one(db)
                .await?
                .is_some(),
        )
    };
    if exists(db).await? {
        return Ok(());
    }
    match create(db, workspace_id).await {
        Ok(()) => Ok(()),
        // Another process created it meanwhile (the name is unique per workspace).
        Err(_) if exists(db).await? => Ok(()),
        Err(e) => Err(e),
    }
}

async fn create(db: &DatabaseConnection, workspace_id: i64) -> Result<()> {
    let now = clock::now();
    let txn = crate::platform::db::write(db).await?;
    let p = plugin::ActiveModel {
        workspace_id: Set(workspace_id),
        name: Set(NAME.into()),
        enabled: Set(true),
        active_version_id: Set(None),
        shadow_version_id: Set(None),
        consecutive_failures: Set(0),
        failure_threshold: Set(DEFAULT_FAILURE_THRESHOLD),
        disabled_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let v = plugin_version::ActiveModel {
        workspace_id: Set(workspace_id),
        plugin_id: Set(p.id),
        version: Set(1),
        declared_name: Set("rapport-rules".into()),
        declared_version: Set("1".into()),
        scores: Set(false),
        recommends: Set(true),
        wasm_sha256: Set(COMPONENT.into()),
        input_query: Set(QUERY.into()),
        input_cost: Set(COST),
        config: Set(serde_json::json!({})),
        limits: Set(serde_json::to_value(Limits::default()).expect("limits serialise")),
        hooks: Set(None),
        subject: Set(super::Subject::Contact.as_str().into()),
        created_at: Set(now),
        created_by: Set(None),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let mut am: plugin::ActiveModel = p.into();
    am.active_version_id = Set(Some(v.id));
    let p = am.update(&txn).await?;
    let note = "Rapport's built-in next best actions: stale deals, unowned hot leads, churn risk";
    record_event(&txn, &p, Some(v.id), "registered", Some(note.into()), None).await?;
    txn.commit().await?;
    Ok(())
}

/// What answers a version's calls: its WebAssembly component, or the built-in rules.
#[derive(Clone)]
pub(crate) enum Callee {
    /// An uploaded component.
    Component(Loaded),
    /// [`recommend`].
    Rules,
}

impl Callee {
    /// The callee of a version.
    pub(crate) async fn of(
        db: &DatabaseConnection,
        host: &Host,
        v: &plugin_version::Model,
    ) -> Result<Callee> {
        if is_builtin(v) {
            Ok(Callee::Rules)
        } else {
            Ok(Callee::Component(registry::loaded(db, host, v).await?))
        }
    }

    /// A score (the rules do not score).
    pub(crate) fn attempt_score(
        &self,
        input: &Input,
        limits: &Limits,
    ) -> Attempt<rapport_plugins::Score> {
        match self {
            Callee::Component(l) => l.attempt_score(input, limits),
            Callee::Rules => answered(Err(Error::Refused {
                code: "unsupported".into(),
                message: "the built-in rules do not score".into(),
            })),
        }
    }

    /// Recommended actions.
    pub(crate) fn attempt_next_best_actions(
        &self,
        input: &Input,
        limits: &Limits,
    ) -> Attempt<Vec<Action>> {
        match self {
            Callee::Component(l) => l.attempt_next_best_actions(input, limits),
            Callee::Rules => answered(recommend(input)),
        }
    }
}

fn answered<T>(result: std::result::Result<T, Error>) -> Attempt<T> {
    Attempt {
        result,
        fuel_used: 0,
        elapsed: std::time::Duration::ZERO,
        log: Vec::new(),
        log_dropped: 0,
    }
}

/// The rules applied to one contact's input.
pub fn recommend(input: &Input) -> std::result::Result<Vec<Action>, Error> {
    let bad = |message: &str| Error::Refused {
        code: "bad-input".into(),
        message: message.into(),
    };
    let data: Value = serde_json::from_str(&input.data).map_err(|_| bad("data is not JSON"))?;
    let Some(c) = data.get("contact").filter(|c| c.is_object()) else {
        return Err(bad("the input has no contact"));
    };
    let name = c["name"].as_str().unwrap_or("this contact");
    let now = chrono::DateTime::parse_from_rfc3339(&input.as_of).map_err(|_| bad("as-of"))?;
    let last_touch = c
        .pointer("/activities/edges/0/node/occurredAt")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let quiet_days = last_touch.map(|t| (now - t).num_seconds() as f64 / 86_400.0);
    let mut out = Vec::new();
    let stale = quiet_days.is_none_or(|d| d >= STALE_DAYS);
    if stale {
        let silence = match quiet_days {
            Some(d) => format!("no touch for {} days", d.floor()),
            None => "no touch yet".to_string(),
        };
        let deals = c
            .pointer("/deals/edges")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for edge in deals.iter().take(3) {
            let deal = edge["node"]["name"].as_str().unwrap_or("the deal");
            let id = edge["node"]["id"].as_str().unwrap_or_default();
            out.push(Action {
                kind: ActionKind::Call,
                params: vec![
                    ("title".into(), format!("Call {name} about {deal}")),
                    ("due-in-days".into(), "1".into()),
                    ("deal-id".into(), id.into()),
                ],
                priority: 80,
                rationale: format!("The open deal {deal} has gone quiet: {silence}."),
            });
        }
    }
    let lead = matches!(
        c["lifecycleStage"].as_str(),
        Some("LEAD" | "QUALIFIED" | "OPPORTUNITY")
    );
    if lead && c["owner"].is_null() && c.pointer("/leadScore/grade") == Some(&Value::from("A")) {
        out.push(Action {
            kind: ActionKind::CreateTask,
            params: vec![
                ("title".into(), format!("Assign an owner to {name}")),
                ("due-in-days".into(), "1".into()),
            ],
            priority: 70,
            rationale: "A hot lead (lead score grade A) that nobody owns.".into(),
        });
    }
    if c.pointer("/churnRisk/level") == Some(&Value::from("HIGH")) {
        out.push(Action {
            kind: ActionKind::Call,
            params: vec![
                ("title".into(), format!("Win-back call with {name}")),
                ("due-in-days".into(), "2".into()),
            ],
            priority: 75,
            rationale: "The churn risk is high: reach out before they leave.".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(contact: Value) -> Input {
        Input {
            contact_id: "1".into(),
            data: serde_json::json!({ "contact": contact }).to_string(),
            config: "{}".into(),
            as_of: "2026-06-30T00:00:00Z".into(),
        }
    }

    fn touched(at: &str) -> Value {
        serde_json::json!({"edges": [{"node": {"occurredAt": at}}]})
    }

    #[test]
    fn a_quiet_open_deal_asks_for_a_call() {
        let deals = serde_json::json!({"edges": [{"node": {"id": "9", "name": "Big one"}}]});
        let quiet = recommend(&input(serde_json::json!({
            "name": "Ada", "lifecycleStage": "OPPORTUNITY", "owner": {"id": "1"},
            "deals": deals, "activities": touched("2026-06-01T00:00:00Z"),
        })))
        .unwrap();
        assert_eq!(quiet.len(), 1);
        assert_eq!(quiet[0].kind, ActionKind::Call);
        assert!(quiet[0].rationale.contains("no touch for 29 days"));
        assert!(quiet[0].params.contains(&("deal-id".into(), "9".into())));
        let busy = recommend(&input(serde_json::json!({
            "name": "Ada", "lifecycleStage": "OPPORTUNITY", "owner": {"id": "1"},
            "deals": deals, "activities": touched("2026-06-25T00:00:00Z"),
        })))
        .unwrap();
        assert!(busy.is_empty());
    }

    #[test]
    fn hot_unowned_leads_and_churning_customers() {
        let hot = recommend(&input(serde_json::json!({
            "name": "Bo", "lifecycleStage": "LEAD", "owner": null,
            "leadScore": {"grade": "A"}, "deals": {"edges": []},
            "activities": touched("2026-06-29T00:00:00Z"),
        })))
        .unwrap();
        assert_eq!(hot.len(), 1);
        assert_eq!(hot[0].kind, ActionKind::CreateTask);
        let owned = recommend(&input(serde_json::json!({
            "name": "Bo", "lifecycleStage": "LEAD", "owner": {"id": "3"},
            "leadScore": {"grade": "A"}, "activities": touched("2026-06-29T00:00:00Z"),
        })))
        .unwrap();
        assert!(owned.is_empty());
        let leaving = recommend(&input(serde_json::json!({
            "name": "Cy", "lifecycleStage": "CUSTOMER", "churnRisk": {"level": "HIGH"},
            "activities": touched("2026-06-29T00:00:00Z"),
        })))
        .unwrap();
        assert_eq!(leaving.len(), 1);
        assert!(leaving[0].params[0].1.starts_with("Win-back"));
        assert!(recommend(&input(Value::Null)).is_err());
    }
}
