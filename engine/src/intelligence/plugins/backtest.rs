//! Measuring a plugin's score against what happened: a backtest scores the leads of a
//! past moment with a version of the plugin, as of that moment, and compares the scores
//! with who converted in the following days — the label the built-in lead score learns
//! (a won deal or a first order) — beside the active built-in model on the same leads.
//!
//! A plugin sees the past only through its input query: one that declares `$asOf` and
//! filters by it (`occurredAt: {lt: $asOf}`) is scored on what was known then; one that
//! does not reads today's data, and its backtest flatters it.

use chrono::{DateTime, Duration, Utc};
use rapport_plugins::{Input, Limits};
use rapport_schema::{model_version, plugin_version};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::runs::{Failure, batch_size, rate_trips};
use super::{Host, blocking, registry};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::intelligence::analytics::lead_score;
use crate::intelligence::models::metrics::{self, CalibrationBin};
use crate::platform::auth::Principal;
use crate::values::Scope;

/// Leads scored when a backtest names no sample size.
pub const DEFAULT_SAMPLE: usize = 1_000;
/// The most leads one backtest scores.
pub const MAX_SAMPLE: usize = 5_000;
/// The longest outcome window, in days.
pub const MAX_HORIZON_DAYS: i64 = 365;

/// What to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The version to score with (the active one when `None`; a shadow version is named by
    /// its number).
    pub version: Option<i32>,
    /// The moment scored as of; `horizon_days` before now when `None`.
    pub as_of: Option<DateTime<Utc>>,
    /// How long after the moment a conversion counts.
    pub horizon_days: i64,
    /// The most leads scored.
    pub sample: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: None,
            as_of: None,
            horizon_days: lead_score::DEFAULT_WINDOW_DAYS,
            sample: DEFAULT_SAMPLE,
        }
    }
}

/// How well one set of scores ranked the leads that converted.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    /// Leads with a score.
    pub scored: usize,
    /// Of them, those that converted.
    pub converted: usize,
    /// Area under the ROC curve (0.5 is chance); `None` unless both outcomes occur.
    pub auc: Option<f64>,
    /// The conversion rate of the top-scored tenth over everyone's; `None` without a
    /// conversion.
    pub lift: Option<f64>,
    /// Conversion rate by score band (scores read as percentages).
    pub calibration: Vec<CalibrationBin>,
}

impl Measure {
    fn of(probabilities: &[f64], converted: &[bool]) -> Measure {
        Measure {
            scored: probabilities.len(),
            converted: converted.iter().filter(|&&c| c).count(),
            auc: metrics::auc(probabilities, converted),
            lift: metrics::lift_top_decile(probabilities, converted),
            calibration: metrics::calibration(probabilities, converted),
        }
    }
}

/// The active built-in lead score on the same leads.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltIn {
    /// The model version.
    pub version: model_version::Model,
    /// Whether the moment falls in the window the version was trained on: its figures
    /// are then partly on leads it learned from, and flatter it.
    pub overlaps_training: bool,
    /// Its figures.
    pub measure: Measure,
}

/// A backtest's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Backtest {
    /// The version scored.
    pub version: plugin_version::Model,
    /// The moment scored as of.
    pub as_of: DateTime<Utc>,
    /// Whether the version's input query declares `$asOf`: without it the plugin read
    /// today's data, and its figures flatter it.
    pub point_in_time: bool,
    /// The outcome window in days.
    pub horizon_days: i64,
    /// Leads in the sample.
    pub leads: usize,
    /// The plugin's figures over the leads it scored.
    pub plugin: Measure,
    /// The built-in lead score's, over the same leads; `None` without an active version.
    pub built_in: Option<BuiltIn>,
    /// Calls that failed (a refusal is not a failure); the first few, with why.
    pub failed: usize,
    /// The first failures.
    pub failures: Vec<Failure>,
    /// Whether calls stopped early because too many failed.
    pub stopped_early: bool,
}

/// Failures kept in a [`Backtest`].
const KEPT_FAILURES: usize = 10;

/// Backtests a version of the plugin `name` (admins only: it runs the plugin over up to
/// [`MAX_SAMPLE`] leads). Nothing is stored: the scores exist only in the answer.
pub async fn backtest(
    db: &DatabaseConnection,
    host: &Host,
    who: &Principal,
    name: &str,
    options: Options,
) -> Result<Backtest> {
    who.require(Scope::Admin)?;
    if !(1..=MAX_HORIZON_DAYS).contains(&options.horizon_days) {
        return Err(EngineError::invalid(
            "horizonDays",
            format!("must be between 1 and {MAX_HORIZON_DAYS}"),
        ));
    }
    if !(1..=MAX_SAMPLE).contains(&options.sample) {
        return Err(EngineError::invalid(
            "sample",
            format!("must be between 1 and {MAX_SAMPLE}"),
        ));
    }
    let now = clock::now();
    let horizon = Duration::days(options.horizon_days);
    let as_of = options.as_of.unwrap_or(now - horizon);
    if as_of + horizon > now {
        return Err(EngineError::invalid(
            "asOf",
            format!(
                "its {}-day outcome window has not ended: choose a moment before {}",
                options.horizon_days,
                (now - horizon).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    let p = registry::by_name(db, who.workspace_id, name).await?;
    let version = match options.version {
        Some(n) => plugin_version::Entity::find()
            .filter(plugin_version::Column::PluginId.eq(p.id))
            .filter(plugin_version::Column::Version.eq(n))
            .one(db)
            .await?
            .ok_or_else(|| EngineError::not_found("PluginVersion", format!("{name}@{n}")))?,
        None => {
            let id = p.active_version_id.ok_or_else(|| {
                EngineError::invalid("version", "the plugin has no active version: name one")
            })?;
            plugin_version::Entity::find_by_id(id)
                .one(db)
                .await?
                .ok_or_else(|| EngineError::not_found("PluginVersion", id))?
        }
    };
    if !version.scores {
        return Err(EngineError::invalid(
            "version",
            format!(
                "version {} of {name} does not score; only scores are backtested",
                version.version
            ),
        ));
    }
    let subject = super::subject_of(&version);
    if subject != super::Subject::Contact {
        return Err(EngineError::invalid(
            "name",
            format!(
                "{name} scores {}s; backtests measure scores of contacts against their conversion",
                subject.as_str()
            ),
        ));
    }
    // One backtest per workspace at a time: each loads the workspace's history and
    // makes thousands of calls.
    let _claim = host.backtests.claim(who.workspace_id)?;
    let population = lead_score::population(
        db,
        who.workspace_id,
        as_of,
        options.horizon_days,
        options.sample,
    )
    .await?;
    let scored = score(host, db, &p.name, &version, &population.contacts, as_of).await?;

    let (mut probabilities, mut converted, mut kept) = (Vec::new(), Vec::new(), Vec::new());
    for (i, s) in scored.scores.iter().enumerate() {
        if let Some(s) = s {
            probabilities.push(s / 100.0);
            converted.push(population.converted[i]);
            kept.push(i);
        }
    }
    // The built-in score is measured on the leads the plugin scored, so a plugin that
    // declines the hard ones is not flattered by the comparison.
    let built_in = population.built_in.map(|(version, predicted)| {
        let predicted: Vec<f64> = kept.iter().map(|&i| predicted[i]).collect();
        BuiltIn {
            // Its training labels came from [window_from, window_to]: a moment whose
            // outcome window reaches into that span measures it partly on what it learned.
            overlaps_training: as_of < version.window_to && as_of + horizon > version.window_from,
            measure: Measure::of(&predicted, &converted),
            version,
        }
    });
    Ok(Backtest {
        point_in_time: host.inputs.reads_as_of(&version.input_query),
        version,
        as_of,
        horizon_days: options.horizon_days,
        leads: population.contacts.len(),
        plugin: Measure::of(&probabilities, &converted),
        built_in,
        failed: scored.failed,
        failures: scored.failures,
        stopped_early: scored.stopped_early,
    })
}

/// The workspaces with a backtest running, shared by a host's requests.
#[derive(Clone, Debug, Default)]
pub struct Running(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

/// A workspace's claim on its one backtest, released when dropped.
struct Claim {
    running: Running,
    workspace_id: i64,
}

impl Running {
    fn claim(&self, workspace_id: i64) -> Result<Claim> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(&workspace_id) {
            return Err(EngineError::Conflict(
                "a backtest of this workspace is running; try again when it ends".into(),
            ));
        }
        running.push(workspace_id);
        Ok(Claim {
            running: self.clone(),
            workspace_id,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut running = self.running.0.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|&w| w != self.workspace_id);
    }
}

/// A version's scores of contacts as of a moment.
struct Scored {
    /// Per contact, in order: the score, or `None` when it has none (failed or refused).
    scores: Vec<Option<f64>>,
    failed: usize,
    failures: Vec<Failure>,
    stopped_early: bool,
}

async fn score(
    host: &Host,
    db: &DatabaseConnection,
    name: &str,
    v: &plugin_version::Model,
    contacts: &[i64],
    as_of: DateTime<Utc>,
) -> Result<Scored> {
    let loaded = registry::loaded(db, host, v).await?;
    let limits: Limits = serde_json::from_value(v.limits.clone()).unwrap_or_default();
    let config = v.config.to_string();
    let moment = as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = Scored {
        scores: Vec::with_capacity(contacts.len()),
        failed: 0,
        failures: Vec::new(),
        stopped_early: false,
    };
    let mut made = 0u32;
    for chunk in contacts.chunks(batch_size(v.input_cost)) {
        if out.stopped_early {
            out.scores.extend(std::iter::repeat_n(None, chunk.len()));
            continue;
        }
        let data = host
            .inputs
            .fetch(v.workspace_id, &v.input_query, v.input_cost, chunk, as_of)
            .await?;
        let calls: Vec<Option<Input>> = chunk
            .iter()
            .zip(data)
            .map(|(&id, d)| {
                d.ok().map(|data| Input {
                    contact_id: id.to_string(),
                    data,
                    config: config.clone(),
                    as_of: moment.clone(),
                })
            })
            .collect();
        let (l, lim) = (loaded.clone(), limits.clone());
        let (start_made, start_failed) = (made, out.failed as u32);
        // Calls stop once most of them fail, as a run's breaker would open: a broken
        // version answers at once instead of spending every call's time limit.
        let (results, made_after) = blocking(move || {
            let (mut made, mut failed) = (start_made, start_failed);
            let mut results = Vec::with_capacity(calls.len());
            for input in &calls {
                if rate_trips(made, failed) {
                    results.push(None);
                    continue;
                }
                let result = input.as_ref().map(|i| l.score(i, &lim));
                made += u32::from(result.is_some());
                if matches!(&result, Some(Err(e)) if !matches!(e, rapport_plugins::Error::Refused { .. }))
                {
                    failed += 1;
                }
                results.push(result);
            }
            (results, made)
        })
        .await?;
        made = made_after;
        for (&contact_id, result) in chunk.iter().zip(results) {
            match result {
                Some(Ok(call)) => out.scores.push(Some(call.value.score.clamp(0.0, 100.0))),
                Some(Err(e)) => {
                    if !matches!(e, rapport_plugins::Error::Refused { .. }) {
                        out.failed += 1;
                        if out.failures.len() < KEPT_FAILURES {
                            out.failures.push(Failure {
                                plugin: name.to_string(),
                                contact_id,
                                message: format!("plugin {name} {e}"),
                            });
                        }
                    }
                    out.scores.push(None);
                }
                None => out.scores.push(None),
            }
        }
        out.stopped_early = rate_trips(made, out.failed as u32);
    }
    Ok(out)
}
