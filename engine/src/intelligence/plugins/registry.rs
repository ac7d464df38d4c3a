//! Plugins and their versions: registering (with every check a component must pass),
//! enabling, disabling, rolling back, the circuit breaker, and the event log.

use rapport_plugins::{Capabilities, Input, Limits, Loaded};
use rapport_schema::{plugin, plugin_component, plugin_event, plugin_version};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::{Checked, Host, PluginName, Subject, blocking, plugin_error};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::Scope;

/// Failed calls in a row after which a plugin is disabled, by default.
pub const DEFAULT_FAILURE_THRESHOLD: i32 = 5;
/// The most an input query may cost for one contact.
pub const MAX_INPUT_COST: i32 = 5_000;

/// A new version of a plugin, as uploaded.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The plugin's name in this workspace (a new name makes a new plugin).
    pub name: String,
    /// The WebAssembly component.
    pub wasm: Vec<u8>,
    /// The GraphQL query whose result the plugin receives, with a `$contactId` variable.
    pub input_query: String,
    /// The plugin's own configuration (a JSON object; `{}` when absent).
    pub config: Option<serde_json::Value>,
    /// Limits per call (missing fields keep their defaults).
    pub limits: Option<serde_json::Value>,
    /// Failed calls in a row that disable the plugin.
    pub failure_threshold: Option<i32>,
    /// Registers the version as the plugin's shadow (see [`super::shadow`]) instead of
    /// making it active.
    pub shadow: bool,
    /// Event types whose tracking calls the version's next-best-actions with the event
    /// (see [`super::hooks`]).
    pub hooks: Vec<String>,
}

/// Where a plugin's version came from and what it does, with the plugin.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The plugin.
    pub plugin: plugin::Model,
    /// The version just stored, now active.
    pub version: plugin_version::Model,
}

/// Checks and stores a new version of a plugin and makes it the active one.
///
/// The component must compile, target the plugin world with only imports the host
/// provides, answer `describe()`, and run on a sample input (the workspace's first
/// contact, or no contact at all in an empty workspace) without trapping or breaking a
/// limit. The input query must be a read-only query of this schema within
/// [`MAX_INPUT_COST`]. Nothing is stored unless every check passes.
pub async fn register(
    db: &DatabaseConnection,
    host: &Host,
    who: &Principal,
    r: Registration,
) -> Result<Registered> {
    who.require(Scope::Admin)?;
    let name = PluginName::parse(&r.name)?;
    if name.as_str() == super::rules::NAME {
        return Err(EngineError::invalid(
            "name",
            "rapport is the built-in rules' name; choose another",
        ));
    }
    let config = match r.config {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(v @ serde_json::Value::Object(_)) => v,
        Some(_) => return Err(EngineError::invalid("config", "must be a JSON object")),
    };
    let limits = match &r.limits {
        None | Some(serde_json::Value::Null) => Limits::default(),
        Some(v) => {
            Limits::parse(v).map_err(|(field, message)| EngineError::invalid(field, message))?
        }
    };
    let threshold = r.failure_threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD);
    if !(1..=1000).contains(&threshold) {
        return Err(EngineError::invalid(
            "failureThreshold",
            "must be between 1 and 1000",
        ));
    }
    let hooks = super::hooks::parse(&r.hooks)?;
    if r.wasm.is_empty() {
        return Err(EngineError::invalid("wasm", "the upload is empty"));
    }
    let Checked { cost, subject } = host.inputs.check(who.workspace_id, &r.input_query).await?;
    if cost > MAX_INPUT_COST {
        return Err(EngineError::invalid(
            "inputQuery",
            format!(
                "the query costs {cost}; at most {MAX_INPUT_COST} per {}",
                subject.as_str()
            ),
        ));
    }
    if subject != Subject::Contact {
        // Shadows are measured, and hooks answer, against contacts' conversions and
        // events; a deal's or company's plugin is asked only for its score.
        if r.shadow {
            return Err(EngineError::invalid(
                "shadow",
                "shadow versions are measured against contacts' conversions: only a plugin of contacts can have one",
            ));
        }
        if !hooks.is_empty() {
            return Err(EngineError::invalid(
                "hooks",
                "hooks call a plugin about the contact of an event: only a plugin of contacts can have them",
            ));
        }
    }
    // Checked before the sample run too, so a wrong upload is refused before it runs.
    if let Some(p) = plugin::Entity::find()
        .filter(plugin::Column::WorkspaceId.eq(who.workspace_id))
        .filter(plugin::Column::Name.eq(name.as_str()))
        .one(db)
        .await?
    {
        ensure_same_subject(db, &p, subject, "inputQuery").await?;
    }

    let runtime = host.runtime.clone();
    let wasm = r.wasm.clone();
    let loaded = blocking(move || runtime.load(&wasm))
        .await?
        .map_err(|e| plugin_error("wasm", name.as_str(), &e))?;
    let (l, lim) = (loaded.clone(), limits.clone());
    let description = blocking(move || l.describe(&lim))
        .await?
        .map_err(|e| plugin_error("wasm", name.as_str(), &e))?
        .value;
    if r.shadow && !description.implements.score {
        return Err(EngineError::invalid(
            "shadow",
            format!(
                "plugin {} does not score: a shadow version is measured by its scores",
                name.as_str()
            ),
        ));
    }
    if !hooks.is_empty() && !description.implements.next_best_actions {
        return Err(EngineError::invalid(
            "hooks",
            format!(
                "plugin {} does not implement next-best-actions, which a hook calls",
                name.as_str()
            ),
        ));
    }
    if subject != Subject::Contact && !description.implements.score {
        return Err(EngineError::invalid(
            "wasm",
            format!(
                "plugin {} does not score: a plugin of {}s is asked only for scores \
                 (next best actions are for contacts)",
                name.as_str(),
                subject.as_str()
            ),
        ));
    }
    if !description.implements.score && !description.implements.next_best_actions {
        return Err(EngineError::invalid(
            "wasm",
            format!(
                "plugin {} implements neither score nor next-best-actions",
                name.as_str()
            ),
        ));
    }
    // A deal's or company's plugin is never asked for actions, whatever it exports.
    let mut implements = description.implements;
    implements.next_best_actions &= subject == Subject::Contact;
    let sample = sample_run(
        db,
        host,
        who.workspace_id,
        &loaded,
        &name,
        (&r.input_query, cost, subject),
        &config,
        &limits,
        implements,
    )
    .await?;

    let now = clock::now();
    let sha256 = loaded.sha256.clone();
    let txn = crate::platform::db::write(db).await?;
    // Locked (on PostgreSQL; SQLite writes one at a time) and its subject checked again:
    // two uploads racing must not leave the plugin with versions of two subjects.
    let existing = plugin::Entity::find()
        .filter(plugin::Column::WorkspaceId.eq(who.workspace_id))
        .filter(plugin::Column::Name.eq(name.as_str()))
        .lock_exclusive()
        .one(&txn)
        .await?;
    let p = match existing {
        Some(p) => {
            ensure_same_subject(&txn, &p, subject, "inputQuery").await?;
            p
        }
        None => {
            plugin::ActiveModel {
                workspace_id: Set(who.workspace_id),
                name: Set(name.as_str().to_string()),
                enabled: Set(true),
                active_version_id: Set(None),
                shadow_version_id: Set(None),
                consecutive_failures: Set(0),
                failure_threshold: Set(threshold),
                disabled_reason: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&txn)
            .await?
        }
    };
    let stored = plugin_component::Entity::find()
        .filter(plugin_component::Column::WorkspaceId.eq(who.workspace_id))
        .filter(plugin_component::Column::Sha256.eq(&sha256))
        .select_only()
        .column(plugin_component::Column::Id)
        .into_tuple::<i64>()
        .one(&txn)
        .await?;
    if stored.is_none() {
        plugin_component::ActiveModel {
            workspace_id: Set(who.workspace_id),
            sha256: Set(sha256.clone()),
            wasm: Set(r.wasm),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    let last: Option<i32> = plugin_version::Entity::find()
        .filter(plugin_version::Column::PluginId.eq(p.id))
        .select_only()
        .column_as(plugin_version::Column::Version.max(), "v")
        .into_tuple::<Option<i32>>()
        .one(&txn)
        .await?
        .flatten();
    let version = plugin_version::ActiveModel {
        workspace_id: Set(who.workspace_id),
        plugin_id: Set(p.id),
        version: Set(last.unwrap_or(0) + 1),
        declared_name: Set(description.name),
        declared_version: Set(description.version),
        scores: Set(description.implements.score),
        recommends: Set(implements.next_best_actions),
        subject: Set(subject.as_str().to_string()),
        wasm_sha256: Set(sha256),
        input_query: Set(r.input_query),
        input_cost: Set(cost),
        config: Set(config),
        limits: Set(serde_json::to_value(&limits).expect("limits serialise")),
        hooks: Set((!hooks.is_empty()).then(|| serde_json::json!(hooks))),
        created_at: Set(now),
        created_by: Set(who.key_id),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let replaced_shadow = p.shadow_version_id;
    let mut am: plugin::ActiveModel = p.into();
    if r.shadow {
        am.shadow_version_id = Set(Some(version.id));
    } else {
        am.active_version_id = Set(Some(version.id));
    }
    am.failure_threshold = Set(threshold);
    am.updated_at = Set(now);
    let p = am.update(&txn).await?;
    if let Some(old) = replaced_shadow.filter(|_| r.shadow) {
        super::shadow::forget(&txn, old).await?;
    }
    let (kind, role) = if r.shadow {
        (
            "shadow_registered",
            " (shadow: scored apart, never shown or acted on)",
        )
    } else {
        ("registered", "")
    };
    record_event(
        &txn,
        &p,
        Some(version.id),
        kind,
        Some(format!("version {}{role}; {sample}", version.version)),
        who.key_id,
    )
    .await?;
    txn.commit().await?;
    if !hooks.is_empty() && !r.shadow {
        restart_hooks(db, &p).await;
    }
    tracing::info!(plugin = %p.name, version = version.version, "plugin registered");
    rescore_soon(db, who.workspace_id, subject).await;
    Ok(Registered { plugin: p, version })
}

/// Refuses a version whose subject differs from the plugin's earlier versions': its
/// scores live beside that subject's records, and a rollback must not change what they
/// are about.
async fn ensure_same_subject(
    db: &impl ConnectionTrait,
    p: &plugin::Model,
    subject: Subject,
    field: &str,
) -> Result<()> {
    let earlier: Option<String> = plugin_version::Entity::find()
        .filter(plugin_version::Column::PluginId.eq(p.id))
        .select_only()
        .column(plugin_version::Column::Subject)
        .order_by_desc(plugin_version::Column::Version)
        .into_tuple::<String>()
        .one(db)
        .await?;
    match earlier.map(|s| Subject::parse(&s).unwrap_or_default()) {
        Some(before) if before != subject => Err(EngineError::invalid(
            field,
            format!(
                "plugin {} scores {}s (its query declares ${}); a version cannot change what \
                 it scores: register it under another name",
                p.name,
                before.as_str(),
                before.variable()
            ),
        )),
        _ => Ok(()),
    }
}

/// Runs the new component once the way scoring will, so a plugin that cannot work is
/// refused at upload rather than discovered failing later.
#[allow(clippy::too_many_arguments)]
async fn sample_run(
    db: &DatabaseConnection,
    host: &Host,
    workspace_id: i64,
    loaded: &Loaded,
    name: &PluginName,
    (query, cost, of): (&str, i32, Subject),
    config: &serde_json::Value,
    limits: &Limits,
    implements: Capabilities,
) -> Result<String> {
    let sample = super::record_scores::first(db, workspace_id, of).await?;
    let now = clock::now();
    let (contact_id, data) = match sample {
        Some(id) => {
            let fetched = host
                .inputs
                .fetch(workspace_id, query, cost, &[id], now)
                .await?;
            let data = fetched
                .into_iter()
                .next()
                .unwrap_or_else(|| Err("no result".into()));
            (
                id.to_string(),
                data.map_err(|e| EngineError::invalid("inputQuery", e))?,
            )
        }
        None => ("0".to_string(), format!(r#"{{"{}":null}}"#, of.as_str())),
    };
    let input = Input {
        contact_id,
        data,
        config: config.to_string(),
        as_of: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let subject = if input.contact_id == "0" {
        format!("no {} (the workspace has none)", of.as_str())
    } else {
        format!("{} {}", of.as_str(), input.contact_id)
    };
    let (l, lim) = (loaded.clone(), limits.clone());
    let outcome = blocking(move || {
        let score = implements.score.then(|| {
            l.score(&input, &lim).map(|c| {
                format!(
                    "score {:.1} (fuel {}, {} µs)",
                    c.value.score,
                    c.fuel_used,
                    c.elapsed.as_micros()
                )
            })
        });
        let actions = implements.next_best_actions.then(|| {
            l.next_best_actions(&input, &lim).map(|c| {
                format!(
                    "{} action(s) (fuel {}, {} µs)",
                    c.value.len(),
                    c.fuel_used,
                    c.elapsed.as_micros()
                )
            })
        });
        score.into_iter().chain(actions).collect::<Vec<_>>()
    })
    .await?;
    // What the sample run answered, for the plugin's event log and its author.
    let mut said = Vec::new();
    for result in outcome {
        match result {
            Ok(summary) => said.push(summary),
            // A refusal is an answer: the plugin runs and says this input does not suit it.
            Err(rapport_plugins::Error::Refused { .. }) => said.push("refused the input".into()),
            Err(e) => return Err(plugin_error("wasm", name.as_str(), &e)),
        }
    }
    Ok(format!("sample run on {subject}: {}", said.join("; ")))
}

/// Queues every record of `subject` in the workspace for its plugins, after a change of
/// what runs. The change itself stands when queueing fails; the next full rescore catches
/// up.
pub(super) async fn rescore_soon(db: &DatabaseConnection, workspace_id: i64, subject: Subject) {
    let queued = match subject {
        Subject::Contact => super::runs::enqueue(db, workspace_id, None).await,
        other => match super::record_scores::everyone(db, workspace_id, other).await {
            Ok(ids) => super::record_scores::enqueue_ids(db, workspace_id, other, &ids).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = queued {
        tracing::warn!(error = %e, "queueing plugin runs failed");
    }
}

/// The subject of a plugin's active version (contacts when it has none).
async fn active_subject(db: &DatabaseConnection, p: &plugin::Model) -> Result<Subject> {
    Ok(match p.active_version_id {
        Some(id) => plugin_version::Entity::find_by_id(id)
            .one(db)
            .await?
            .map_or(Subject::Contact, |v| super::subject_of(&v)),
        None => Subject::Contact,
    })
}

/// Restarts the hook cursor after a version became active (see [`super::hooks::restart`]).
/// The change itself stands when that fails: the dispatcher then starts from where it was.
pub(super) async fn restart_hooks(db: &DatabaseConnection, p: &plugin::Model) {
    if let Err(e) = super::hooks::restart(db, p.workspace_id, p.id).await {
        tracing::warn!(error = %e, plugin = %p.name, "restarting the hook cursor failed");
    }
}

/// Appends to a plugin's event log.
pub(crate) async fn record_event(
    db: &impl ConnectionTrait,
    p: &plugin::Model,
    version_id: Option<i64>,
    kind: &str,
    message: Option<String>,
    actor: Option<i64>,
) -> Result<()> {
    plugin_event::ActiveModel {
        workspace_id: Set(p.workspace_id),
        plugin_id: Set(p.id),
        version_id: Set(version_id),
        kind: Set(kind.to_string()),
        message: Set(message),
        actor_key_id: Set(actor),
        at: Set(clock::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The workspace's plugins by name.
pub async fn list(db: &DatabaseConnection, workspace_id: i64) -> Result<Vec<plugin::Model>> {
    Ok(
        records::scoped::<plugin::Entity>(workspace_id, records::Deleted::Include)
            .order_by_asc(plugin::Column::Name)
            .all(db)
            .await?,
    )
}

/// One plugin by name.
pub async fn by_name(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
) -> Result<plugin::Model> {
    plugin::Entity::find()
        .filter(plugin::Column::WorkspaceId.eq(workspace_id))
        .filter(plugin::Column::Name.eq(name))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("Plugin", name))
}

/// A plugin's versions, newest first.
pub async fn versions(
    db: &DatabaseConnection,
    p: &plugin::Model,
) -> Result<Vec<plugin_version::Model>> {
    Ok(plugin_version::Entity::find()
        .filter(plugin_version::Column::WorkspaceId.eq(p.workspace_id))
        .filter(plugin_version::Column::PluginId.eq(p.id))
        .order_by_desc(plugin_version::Column::Version)
        .all(db)
        .await?)
}

/// A plugin's events, newest first.
pub async fn events(
    db: &DatabaseConnection,
    p: &plugin::Model,
) -> Result<Vec<plugin_event::Model>> {
    Ok(plugin_event::Entity::find()
        .filter(plugin_event::Column::WorkspaceId.eq(p.workspace_id))
        .filter(plugin_event::Column::PluginId.eq(p.id))
        .order_by_desc(plugin_event::Column::At)
        .order_by_desc(plugin_event::Column::Id)
        .all(db)
        .await?)
}

/// Tells webhooks that a plugin stopped running (`plugin.disabled`), by hand or by its
/// circuit breaker (`reason` says which), in the transaction that disabled it.
pub(crate) async fn tell_disabled(
    db: &impl ConnectionTrait,
    p: &plugin::Model,
    by: &str,
) -> Result<()> {
    use crate::platform::outbox;
    let subject = outbox::Subject {
        typename: "Plugin",
        id: p.id,
    };
    let object = serde_json::json!({
        "__typename": "Plugin",
        "id": p.id.to_string(),
        "name": p.name,
        "enabled": p.enabled,
        "disabledReason": p.disabled_reason,
    });
    let data = serde_json::json!({ "object": object, "disabledBy": by });
    outbox::emit(
        db,
        p.workspace_id,
        crate::values::WebhookEventType::PluginDisabled,
        subject,
        data,
    )
    .await
}

/// Enables or disables a plugin by hand. Enabling resets the circuit breaker.
pub async fn set_enabled(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
    enabled: bool,
) -> Result<plugin::Model> {
    who.require(Scope::Admin)?;
    let p = by_name(db, who.workspace_id, name).await?;
    let txn = crate::platform::db::write(db).await?;
    let mut am: plugin::ActiveModel = p.into();
    am.enabled = Set(enabled);
    am.consecutive_failures = Set(0);
    am.disabled_reason = Set(None);
    am.updated_at = Set(clock::now());
    let p = am.update(&txn).await?;
    let kind = if enabled { "enabled" } else { "disabled" };
    record_event(&txn, &p, p.active_version_id, kind, None, who.key_id).await?;
    if !enabled {
        tell_disabled(&txn, &p, "admin").await?;
    }
    txn.commit().await?;
    if enabled {
        restart_hooks(db, &p).await;
        rescore_soon(db, who.workspace_id, active_subject(db, &p).await?).await;
    }
    Ok(p)
}

/// Makes an earlier (or later) version the active one.
pub async fn roll_back(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
    version: i32,
) -> Result<plugin::Model> {
    who.require(Scope::Admin)?;
    let p = by_name(db, who.workspace_id, name).await?;
    let v = plugin_version::Entity::find()
        .filter(plugin_version::Column::PluginId.eq(p.id))
        .filter(plugin_version::Column::Version.eq(version))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("PluginVersion", format!("{name}@{version}")))?;
    let subject = super::subject_of(&v);
    if subject != active_subject(db, &p).await? {
        return Err(EngineError::invalid(
            "version",
            format!(
                "version {version} of {name} scores {}s, not what the plugin scores",
                subject.as_str()
            ),
        ));
    }
    let txn = crate::platform::db::write(db).await?;
    let mut am: plugin::ActiveModel = p.into();
    am.active_version_id = Set(Some(v.id));
    am.updated_at = Set(clock::now());
    let p = am.update(&txn).await?;
    record_event(
        &txn,
        &p,
        Some(v.id),
        "rolled_back",
        Some(format!("version {version} is active")),
        who.key_id,
    )
    .await?;
    txn.commit().await?;
    restart_hooks(db, &p).await;
    // The scores shown are the old version's until this one has run.
    rescore_soon(db, who.workspace_id, subject).await;
    Ok(p)
}

/// The stored component (its wasm bytes) of a version.
pub(crate) async fn component_bytes(
    db: &impl sea_orm::ConnectionTrait,
    v: &plugin_version::Model,
) -> Result<Vec<u8>> {
    plugin_component::Entity::find()
        .filter(plugin_component::Column::WorkspaceId.eq(v.workspace_id))
        .filter(plugin_component::Column::Sha256.eq(&v.wasm_sha256))
        .select_only()
        .column(plugin_component::Column::Wasm)
        .into_tuple::<Vec<u8>>()
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("PluginComponent", &v.wasm_sha256))
}

/// The compiled component of a version: from this process's memory when it ran before,
/// otherwise read from the database and loaded (the runtime's disk cache saves compiling).
pub(crate) async fn loaded(
    db: &DatabaseConnection,
    host: &Host,
    v: &plugin_version::Model,
) -> Result<Loaded> {
    if let Some(found) = host.runtime.cached(&v.wasm_sha256) {
        return Ok(found);
    }
    let wasm = component_bytes(db, v).await?;
    let runtime = host.runtime.clone();
    blocking(move || runtime.load(&wasm)).await?.map_err(|e| {
        tracing::error!(error = %e, "a stored plugin no longer loads");
        EngineError::Conflict(format!("the stored component no longer loads: {e}"))
    })
}
