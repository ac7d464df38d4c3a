//! WebAssembly plugins on the graph: registering, enabling and rolling back plugins,
//! running them, and the actions they recommend (their scores are `plugin_scores`).

use std::collections::HashMap;
use std::io::Read;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, Json, Object, Result, SimpleObject, Upload};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::plugins::{
    Host, Subject, actions, distribution, record_scores, registry, runs,
};
use rapport_engine::values::Scope;
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use crate::error::{OrGraphql, invalid, to_graphql};
use crate::graphql::batching::Dispatcher;
use crate::graphql::context::principal;
use crate::graphql::ids::{parse_id, parse_ids, to_id};
use crate::graphql::plugin_actions::{ActionKind, RecommendedAction};

/// The most contacts one `runPlugins` call takes.
const MAX_RUN: usize = 1000;
/// The largest component an upload may carry.
const MAX_UPLOAD: u64 = 64 << 20;

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

fn host<'a>(ctx: &Context<'a>) -> Result<&'a Host> {
    ctx.data_unchecked::<Option<Host>>()
        .as_ref()
        .ok_or_else(|| {
            to_graphql(rapport_engine::EngineError::Conflict(
                "plugins are not available on this server".into(),
            ))
        })
}

/// The first of `ids` that is not a live record of `subject` in the workspace.
async fn missing(
    db: &DatabaseConnection,
    workspace_id: i64,
    subject: Subject,
    ids: &[i64],
) -> Result<Option<i64>> {
    use rapport_engine::platform::records::{Deleted, scoped};
    if ids.is_empty() {
        return Ok(None);
    }
    macro_rules! live {
        ($entity:ident) => {
            scoped::<s::$entity::Entity>(workspace_id, Deleted::Exclude)
                .filter(s::$entity::Column::Id.is_in(ids.iter().copied()))
                .select_only()
                .column(s::$entity::Column::Id)
                .into_tuple::<i64>()
                .all(db)
                .await
                .map_err(|e| to_graphql(e.into()))?
        };
    }
    let live: Vec<i64> = match subject {
        Subject::Contact => live!(contact),
        Subject::Deal => live!(deal),
        Subject::Company => live!(company),
    };
    Ok(ids.iter().copied().find(|id| !live.contains(id)))
}

/// Plugin scores and open actions by contact, and plugins and versions by id.
pub struct PluginRows {
    db: DatabaseConnection,
    workspace_id: i64,
}

/// Key of [`PluginRows`]: what to load for one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginKey {
    /// A contact's current plugin scores.
    Scores(i64),
    /// A contact's open recommended actions.
    Actions(i64),
    /// A deal's or company's current plugin scores.
    RecordScores(Subject, i64),
    /// A plugin.
    Plugin(i64),
    /// A plugin version.
    Version(i64),
}

/// What [`PluginRows`] loads.
#[derive(Clone, Debug)]
pub enum PluginRow {
    Scores(Vec<s::plugin_score::Model>),
    Actions(Vec<s::plugin_action::Model>),
    RecordScores(Vec<s::plugin_record_score::Model>),
    Plugin(s::plugin::Model),
    Version(s::plugin_version::Model),
}

impl Loader<PluginKey> for PluginRows {
    type Value = PluginRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[PluginKey]) -> Result<HashMap<PluginKey, PluginRow>> {
        let (mut score_ids, mut action_ids, mut plugin_ids, mut version_ids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut record_ids: HashMap<Subject, Vec<i64>> = HashMap::new();
        for key in keys {
            match *key {
                PluginKey::Scores(id) => score_ids.push(id),
                PluginKey::RecordScores(subject, id) => {
                    record_ids.entry(subject).or_default().push(id)
                }
                PluginKey::Actions(id) => action_ids.push(id),
                PluginKey::Plugin(id) => plugin_ids.push(id),
                PluginKey::Version(id) => version_ids.push(id),
            }
        }
        let mut out = HashMap::new();
        if !score_ids.is_empty() {
            let mut found = runs::scores_for(&self.db, self.workspace_id, &score_ids)
                .await
                .gql()?;
            for id in score_ids {
                out.insert(
                    PluginKey::Scores(id),
                    PluginRow::Scores(found.remove(&id).unwrap_or_default()),
                );
            }
        }
        for (subject, ids) in record_ids {
            let mut found = record_scores::scores_for(&self.db, self.workspace_id, subject, &ids)
                .await
                .gql()?;
            for id in ids {
                out.insert(
                    PluginKey::RecordScores(subject, id),
                    PluginRow::RecordScores(found.remove(&id).unwrap_or_default()),
                );
            }
        }
        if !action_ids.is_empty() {
            let mut found = actions::open_for(&self.db, self.workspace_id, &action_ids)
                .await
                .gql()?;
            for id in action_ids {
                out.insert(
                    PluginKey::Actions(id),
                    PluginRow::Actions(found.remove(&id).unwrap_or_default()),
                );
            }
        }
        if !plugin_ids.is_empty() {
            for p in s::plugin::Entity::find()
                .filter(s::plugin::Column::WorkspaceId.eq(self.workspace_id))
                .filter(s::plugin::Column::Id.is_in(plugin_ids))
                .all(&self.db)
                .await
                .map_err(|e| to_graphql(e.into()))?
            {
                out.insert(PluginKey::Plugin(p.id), PluginRow::Plugin(p));
            }
        }
        if !version_ids.is_empty() {
            for v in s::plugin_version::Entity::find()
                .filter(s::plugin_version::Column::WorkspaceId.eq(self.workspace_id))
                .filter(s::plugin_version::Column::Id.is_in(version_ids))
                .all(&self.db)
                .await
                .map_err(|e| to_graphql(e.into()))?
            {
                out.insert(PluginKey::Version(v.id), PluginRow::Version(v));
            }
        }
        Ok(out)
    }
}

/// Adds the plugin loader to one request.
pub fn attach(
    request: async_graphql::Request,
    d: &Dispatcher,
    db: &DatabaseConnection,
    workspace_id: i64,
) -> async_graphql::Request {
    let rows = PluginRows {
        db: db.clone(),
        workspace_id,
    };
    request.data(DataLoader::new(rows, d.spawner()).delay(std::time::Duration::ZERO))
}

pub(super) async fn row(ctx: &Context<'_>, key: PluginKey) -> Result<Option<PluginRow>> {
    ctx.data_unchecked::<DataLoader<PluginRows>>()
        .load_one(key)
        .await
}

pub(super) async fn plugin_of(ctx: &Context<'_>, id: i64) -> Result<Option<s::plugin::Model>> {
    Ok(match row(ctx, PluginKey::Plugin(id)).await? {
        Some(PluginRow::Plugin(p)) => Some(p),
        _ => None,
    })
}

pub(super) async fn version_of(
    ctx: &Context<'_>,
    id: i64,
) -> Result<Option<s::plugin_version::Model>> {
    Ok(match row(ctx, PluginKey::Version(id)).await? {
        Some(PluginRow::Version(v)) => Some(v),
        _ => None,
    })
}

/// What a plugin scores: the record its input query's id names.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "rapport_engine::values::PluginSubject")]
pub enum PluginSubject {
    /// `$contactId`: scores on `Contact.scores`, and next best actions.
    Contact,
    /// `$dealId`: scores on `Deal.scores`.
    Deal,
    /// `$companyId`: scores on `Company.scores`.
    Company,
}

/// How a plugin's current scores spread over the workspace.
#[derive(SimpleObject)]
pub struct ScoreDistribution {
    /// Contacts with a current score.
    pub count: u64,
    /// Their mean score.
    pub mean: Option<f64>,
    /// Counts in ten 10-point buckets: 0–10, 10–20, …, 90–100.
    pub buckets: Vec<u64>,
}

/// A plugin of this workspace.
pub struct Plugin(pub s::plugin::Model);

#[Object]
impl Plugin {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why the circuit breaker disabled it.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    /// Failed calls since the last success.
    async fn consecutive_failures(&self) -> i32 {
        self.0.consecutive_failures
    }
    /// Failed calls in a row that disable it.
    async fn failure_threshold(&self) -> i32 {
        self.0.failure_threshold
    }
    /// The version that runs.
    async fn active_version(&self, ctx: &Context<'_>) -> Result<Option<PluginVersion>> {
        Ok(match self.0.active_version_id {
            Some(id) => version_of(ctx, id).await?.map(PluginVersion),
            None => None,
        })
    }
    /// How its current scores spread over the workspace's contacts.
    #[graphql(complexity = 100)]
    async fn score_distribution(&self, ctx: &Context<'_>) -> Result<ScoreDistribution> {
        let ws = principal(ctx)?.workspace_id;
        let d = distribution::of(db(ctx), ws, self.0.id).await.gql()?;
        Ok(ScoreDistribution {
            count: d.count,
            mean: d.mean,
            buckets: d.buckets.to_vec(),
        })
    }
    /// Every version, newest first.
    async fn versions(&self, ctx: &Context<'_>) -> Result<Vec<PluginVersion>> {
        Ok(registry::versions(db(ctx), &self.0)
            .await
            .gql()?
            .into_iter()
            .map(PluginVersion)
            .collect())
    }
    /// Registrations, enables, disables and rollbacks, newest first.
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<PluginEvent>> {
        Ok(registry::events(db(ctx), &self.0)
            .await
            .gql()?
            .into_iter()
            .map(|e| PluginEvent {
                kind: e.kind,
                message: e.message,
                version_id: e.version_id.map(to_id),
                actor_key_id: e.actor_key_id.map(to_id),
                at: e.at,
            })
            .collect())
    }
    /// Its recorded calls, newest first: `first` (1–100) of those older than `before` (a
    /// run id), about `contactId` only (or, for a plugin of deals or companies, the
    /// record `recordId`), failed ones only (`failed: true`). Every call that
    /// failed is recorded, and a sample of the rest. Admin keys only: the inputs
    /// are contacts' data.
    #[graphql(complexity = "first.max(0) as usize * child_complexity")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        contact_id: Option<ID>,
        record_id: Option<ID>,
        failed: Option<bool>,
        before: Option<ID>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<super::plugin_runs::PluginRunRecord>> {
        super::plugin_runs::list(ctx, &self.0, contact_id, record_id, failed, before, first).await
    }
    /// The version scoring in shadow beside the active one (never shown or acted on),
    /// and what it has scored; null without one.
    async fn shadow(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<super::plugin_quality::PluginShadow>> {
        super::plugin_quality::shadow_of(ctx, &self.0).await
    }
    /// Scores the leads of a past moment with a version (the active one unless `version`
    /// names another, a shadow version say) as of that moment, and measures the scores
    /// against who converted — a won deal or a first order — within `horizonDays` after
    /// it (1–365, default 90), beside the active built-in lead score on the same leads.
    /// `asOf` defaults to `horizonDays` ago; its window must have ended. At most `sample`
    /// leads (1–5000, default 1000), spread over the workspace. Nothing is stored. An input query
    /// that declares `$asOf: DateTime` and filters by it reads only what was known then
    /// (`pointInTime`). Admin keys only: it runs the plugin over contacts' data; it costs
    /// half a request's budget, and a workspace runs one at a time (CONFLICT otherwise).
    #[graphql(complexity = 50_000)]
    async fn backtest(
        &self,
        ctx: &Context<'_>,
        version: Option<i32>,
        as_of: Option<DateTime<Utc>>,
        horizon_days: Option<i32>,
        sample: Option<i32>,
    ) -> Result<super::plugin_quality::PluginBacktest> {
        super::plugin_quality::run_backtest(ctx, &self.0, version, as_of, horizon_days, sample)
            .await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Something that happened to a plugin.
#[derive(SimpleObject)]
pub struct PluginEvent {
    /// `registered`, `shadow_registered`, `promoted`, `shadow_discarded`, `enabled`,
    /// `disabled`, `auto_disabled`, `rolled_back`.
    pub kind: String,
    pub message: Option<String>,
    pub version_id: Option<ID>,
    pub actor_key_id: Option<ID>,
    pub at: DateTime<Utc>,
}

/// One uploaded version of a plugin.
pub struct PluginVersion(pub s::plugin_version::Model);

#[Object]
impl PluginVersion {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// 1, 2, ... in upload order.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The name and version the component's `describe()` gave.
    async fn declared_name(&self) -> &str {
        &self.0.declared_name
    }
    async fn declared_version(&self) -> &str {
        &self.0.declared_version
    }
    async fn implements_score(&self) -> bool {
        self.0.scores
    }
    async fn implements_next_best_actions(&self) -> bool {
        self.0.recommends
    }
    /// SHA-256 of the component.
    async fn sha256(&self) -> &str {
        &self.0.wasm_sha256
    }
    async fn input_query(&self) -> &str {
        &self.0.input_query
    }
    /// What it scores: the record its input query's id variable names. Plugins of deals
    /// and companies are asked only for scores.
    async fn subject(&self) -> PluginSubject {
        rapport_engine::intelligence::plugins::subject_of(&self.0).into()
    }
    /// Event types whose tracking calls its next-best-actions with the event.
    async fn hooks(&self) -> Vec<String> {
        rapport_engine::intelligence::plugins::hooks::types(&self.0)
    }
    /// The input query's complexity per record.
    async fn input_cost(&self) -> i32 {
        self.0.input_cost
    }
    async fn config(&self) -> Json<serde_json::Value> {
        Json(self.0.config.clone())
    }
    /// Limits per call: fuel, memoryBytes, timeMs, inputBytes, outputBytes, logBytes.
    async fn limits(&self) -> Json<serde_json::Value> {
        Json(self.0.limits.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// How people answered one plugin's actions of one kind.
#[derive(SimpleObject)]
pub struct ActionAcceptance {
    pub plugin: String,
    pub kind: ActionKind,
    pub offered: i32,
    pub accepted: i32,
    pub rejected: i32,
    /// accepted / (accepted + rejected), when anything was answered.
    pub acceptance_rate: Option<f64>,
    /// Accepted actions whose contact converted (a won deal or an order) within 90 days
    /// after the answer.
    pub converted_after_accepting: i32,
    /// convertedAfterAccepting over the accepted actions whose outcome is known (they
    /// converted, or 90 days have passed); null before any is.
    pub conversion_rate_after_accepting: Option<f64>,
    /// The same for rejected actions: how the contacts did without it, for comparison.
    pub converted_after_rejecting: i32,
    /// The same for rejected actions.
    pub conversion_rate_after_rejecting: Option<f64>,
}

/// A call or input that failed during a run.
#[derive(SimpleObject)]
pub struct PluginFailure {
    pub plugin: String,
    /// The contact the call was about; null for a plugin of deals or companies (see
    /// `recordId`).
    pub contact_id: Option<ID>,
    /// What the call was about.
    pub subject: PluginSubject,
    /// The contact, deal or company the call was about.
    pub record_id: ID,
    pub message: String,
}

/// What `runPlugins` did.
#[derive(SimpleObject)]
pub struct PluginRun {
    /// Plugins that ran (a plugin counts once per kind of record it ran over).
    pub plugins: i32,
    /// Records looked at, per plugin (contacts, deals or companies).
    pub contacts: i32,
    pub scored: i32,
    pub actions: i32,
    pub failures: Vec<PluginFailure>,
    /// Plugins the circuit breaker disabled during the run.
    pub disabled: Vec<String>,
}

/// Reads: plugins and acceptance of their actions.
#[derive(Default)]
pub struct PluginQuery;

#[Object]
impl PluginQuery {
    /// This workspace's plugins, by name.
    async fn plugins(&self, ctx: &Context<'_>) -> Result<Vec<Plugin>> {
        let ws = principal(ctx)?.workspace_id;
        Ok(registry::list(db(ctx), ws)
            .await
            .gql()?
            .into_iter()
            .map(Plugin)
            .collect())
    }
    async fn plugin(&self, ctx: &Context<'_>, name: String) -> Result<Plugin> {
        let ws = principal(ctx)?.workspace_id;
        Ok(Plugin(registry::by_name(db(ctx), ws, &name).await.gql()?))
    }
    /// Acceptance of recommended actions per plugin and kind, and what followed: how
    /// often the contact converted within 90 days after an accepted action, beside after
    /// a rejected one.
    async fn action_acceptance(&self, ctx: &Context<'_>) -> Result<Vec<ActionAcceptance>> {
        let ws = principal(ctx)?.workspace_id;
        Ok(actions::acceptance(db(ctx), ws)
            .await
            .gql()?
            .into_iter()
            .map(|a| {
                let answered = a.accepted + a.rejected;
                ActionAcceptance {
                    kind: ActionKind::from_text(&a.kind),
                    plugin: a.plugin,
                    offered: a.offered as i32,
                    accepted: a.accepted as i32,
                    rejected: a.rejected as i32,
                    acceptance_rate: (answered > 0).then(|| a.accepted as f64 / answered as f64),
                    converted_after_accepting: a.converted_after_accepting as i32,
                    conversion_rate_after_accepting: (a.settled_accepted > 0)
                        .then(|| a.converted_after_accepting as f64 / a.settled_accepted as f64),
                    converted_after_rejecting: a.converted_after_rejecting as i32,
                    conversion_rate_after_rejecting: (a.settled_rejected > 0)
                        .then(|| a.converted_after_rejecting as f64 / a.settled_rejected as f64),
                }
            })
            .collect())
    }
}

/// Writes: plugins and answers to their actions.
#[derive(Default)]
pub struct PluginMutation;

#[Object]
impl PluginMutation {
    /// Uploads a component (multipart upload, field `wasm`) as a new version of the plugin
    /// `name` and makes it active. Refused, with the reason, unless the component compiles,
    /// implements the rapport:plugin@0.1.0 world with imports Rapport provides, and runs
    /// on a sample contact within its limits; and unless `inputQuery` is a query of this
    /// schema with a `$contactId` variable (and, if it likes, `$asOf: DateTime`, the
    /// moment scored as of). With `shadow: true` the version becomes the plugin's shadow
    /// instead: scored apart, never shown or acted on, until `promotePluginShadow`.
    /// `hooks` names event types (at most 20): each time one is tracked for a contact,
    /// the version's next-best-actions is called with the contact's input and the event
    /// (`data.event`), and its actions are stored. Admin keys only.
    #[allow(clippy::too_many_arguments)]
    async fn register_plugin(
        &self,
        ctx: &Context<'_>,
        name: String,
        wasm: Upload,
        input_query: String,
        config: Option<Json<serde_json::Value>>,
        limits: Option<Json<serde_json::Value>>,
        failure_threshold: Option<i32>,
        shadow: Option<bool>,
        hooks: Option<Vec<String>>,
    ) -> Result<Plugin> {
        let who = principal(ctx)?;
        who.require(Scope::Admin).gql()?;
        let upload = wasm
            .value(ctx)
            .map_err(|_| invalid("wasm", "the upload could not be read"))?;
        let mut bytes = Vec::new();
        upload
            .into_read()
            .take(MAX_UPLOAD + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| invalid("wasm", "the upload could not be read"))?;
        if bytes.len() as u64 > MAX_UPLOAD {
            return Err(invalid(
                "wasm",
                format!("larger than {} MiB", MAX_UPLOAD >> 20),
            ));
        }
        let registered = registry::register(
            db(ctx),
            host(ctx)?,
            who,
            registry::Registration {
                name,
                wasm: bytes,
                input_query,
                config: config.map(|c| c.0),
                limits: limits.map(|l| l.0),
                failure_threshold,
                shadow: shadow.unwrap_or(false),
                hooks: hooks.unwrap_or_default(),
            },
        )
        .await
        .gql()?;
        Ok(Plugin(registered.plugin))
    }

    /// Turns a plugin on (resetting its circuit breaker). Admin keys only.
    async fn enable_plugin(&self, ctx: &Context<'_>, name: String) -> Result<Plugin> {
        Ok(Plugin(
            registry::set_enabled(db(ctx), principal(ctx)?, &name, true)
                .await
                .gql()?,
        ))
    }

    /// Turns a plugin off: it stops running and its actions are no longer offered.
    async fn disable_plugin(&self, ctx: &Context<'_>, name: String) -> Result<Plugin> {
        Ok(Plugin(
            registry::set_enabled(db(ctx), principal(ctx)?, &name, false)
                .await
                .gql()?,
        ))
    }

    /// Makes another uploaded version of a plugin the active one.
    async fn rollback_plugin(
        &self,
        ctx: &Context<'_>,
        name: String,
        version: i32,
    ) -> Result<Plugin> {
        Ok(Plugin(
            registry::roll_back(db(ctx), principal(ctx)?, &name, version)
                .await
                .gql()?,
        ))
    }

    /// Runs every enabled plugin (or only `plugin`) over the contacts, deals and companies
    /// now and stores the scores and actions: plugins of contacts over `contactIds`, of
    /// deals over `dealIds`, of companies over `companyIds`. At most 1000 records per
    /// call; the scheduler covers everyone.
    async fn run_plugins(
        &self,
        ctx: &Context<'_>,
        contact_ids: Option<Vec<ID>>,
        deal_ids: Option<Vec<ID>>,
        company_ids: Option<Vec<ID>>,
        plugin: Option<String>,
    ) -> Result<PluginRun> {
        let who = principal(ctx)?;
        who.require(Scope::Write).gql()?;
        let lists = [
            (
                Subject::Contact,
                "contactIds",
                contact_ids.unwrap_or_default(),
            ),
            (Subject::Deal, "dealIds", deal_ids.unwrap_or_default()),
            (
                Subject::Company,
                "companyIds",
                company_ids.unwrap_or_default(),
            ),
        ];
        let total: usize = lists.iter().map(|(_, _, ids)| ids.len()).sum();
        if total > MAX_RUN {
            return Err(invalid(
                "contactIds",
                format!("at most {MAX_RUN} records per call"),
            ));
        }
        let mut parsed = Vec::new();
        for (subject, field, ids) in &lists {
            let ids = parse_ids(field, ids)?;
            if let Some(missing) = missing(db(ctx), who.workspace_id, *subject, &ids).await? {
                let kind = match subject {
                    Subject::Contact => "Contact",
                    Subject::Deal => "Deal",
                    Subject::Company => "Company",
                };
                return Err(to_graphql(rapport_engine::EngineError::not_found(
                    kind, missing,
                )));
            }
            parsed.push((*subject, ids));
        }
        if let Some(name) = &plugin {
            let p = registry::by_name(db(ctx), who.workspace_id, name)
                .await
                .gql()?;
            // A plugin named with none of the records it scores would silently do nothing.
            let active = registry::versions(db(ctx), &p)
                .await
                .gql()?
                .into_iter()
                .find(|v| Some(v.id) == p.active_version_id);
            if let Some(v) = active {
                let subject = rapport_engine::intelligence::plugins::subject_of(&v);
                if parsed
                    .iter()
                    .all(|(s, ids)| *s != subject || ids.is_empty())
                {
                    let (_, field, _) = lists
                        .iter()
                        .find(|(s, _, _)| *s == subject)
                        .expect("a list per subject");
                    return Err(invalid(
                        "plugin",
                        format!("plugin {name} scores {}s: pass {field}", subject.as_str()),
                    ));
                }
            }
        }
        let mut out = PluginRun {
            plugins: 0,
            contacts: 0,
            scored: 0,
            actions: 0,
            failures: Vec::new(),
            disabled: Vec::new(),
        };
        for (subject, ids) in parsed {
            if ids.is_empty() {
                continue;
            }
            let summary = runs::run_records(
                db(ctx),
                host(ctx)?,
                who.workspace_id,
                subject,
                &ids,
                plugin.as_deref(),
            )
            .await
            .gql()?;
            out.plugins += summary.plugins as i32;
            out.contacts += summary.contacts as i32;
            out.scored += summary.scored as i32;
            out.actions += summary.actions as i32;
            out.failures
                .extend(summary.failures.into_iter().map(|f| PluginFailure {
                    plugin: f.plugin,
                    contact_id: (subject == Subject::Contact).then(|| to_id(f.contact_id)),
                    subject: subject.into(),
                    record_id: to_id(f.contact_id),
                    message: f.message,
                }));
            out.disabled.extend(summary.disabled);
        }
        Ok(out)
    }

    /// Accepts a recommended action and carries it out: `CREATE_TASK` and `CALL` create a
    /// task for the contact's owner; `SEND_EMAIL` sends the saved template its `template`
    /// parameter names to the contact, from `fromEmail` (default: the server's
    /// `--mail-from`), through the job queue and marketing's consent rules (only with a
    /// granted opt-in), once;
    /// `ENROLL_SEQUENCE` enrolls the contact in the active sequence its `sequence`
    /// parameter names (refused when there is none; skipped, and said so in the outcome,
    /// when the contact may not be enrolled); `OFFER` and `CUSTOM` are recorded for the app
    /// to carry out.
    async fn accept_action(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
        from_email: Option<String>,
        from_name: Option<String>,
    ) -> Result<RecommendedAction> {
        let id = parse_id("id", &id)?;
        let configured = ctx.data_unchecked::<Option<crate::graphql::context::Mail>>();
        let sender = from_email
            .or_else(|| configured.as_ref().map(|m| m.from.as_str().to_string()))
            .map(|email| actions::Sender {
                email,
                name: from_name,
            });
        Ok(RecommendedAction(
            actions::accept(db(ctx), principal(ctx)?, id, note, sender.as_ref())
                .await
                .gql()?,
        ))
    }

    /// Rejects a recommended action.
    async fn reject_action(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: Option<String>,
    ) -> Result<RecommendedAction> {
        let id = parse_id("id", &id)?;
        Ok(RecommendedAction(
            actions::reject(db(ctx), principal(ctx)?, id, note)
                .await
                .gql()?,
        ))
    }
}
