//! Whether a plugin's score predicts anything, on the graph: `Plugin.backtest` (a version
//! scored as of a past moment against who converted after it, beside the built-in lead
//! score) and shadow versions (`Plugin.shadow`, `promotePluginShadow`,
//! `discardPluginShadow`).

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::models::metrics::CalibrationBin;
use rapport_engine::intelligence::plugins::{Host, backtest, shadow};
use rapport_engine::values::Scope;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid, to_graphql};
use crate::graphql::context::principal;
use crate::graphql::ids::to_id;

fn db<'a>(ctx: &Context<'a>) -> &'a DatabaseConnection {
    ctx.data_unchecked::<DatabaseConnection>()
}

/// A score band and how many of its leads converted.
#[derive(SimpleObject)]
pub struct ScoreBand {
    /// Lowest score of the band (0–100).
    pub from: f64,
    /// Highest score of the band, exclusive (100 includes 100).
    pub to: f64,
    /// Leads scored in the band.
    pub leads: i32,
    /// Their mean score.
    pub mean_score: f64,
    /// The share of them that converted (0–1): a well-calibrated score of 30 converts
    /// about 30% of the time.
    pub conversion_rate: f64,
}

impl From<&CalibrationBin> for ScoreBand {
    fn from(b: &CalibrationBin) -> Self {
        ScoreBand {
            from: b.from * 100.0,
            to: b.to * 100.0,
            leads: b.rows.min(i32::MAX as usize) as i32,
            mean_score: b.predicted * 100.0,
            conversion_rate: b.observed,
        }
    }
}

/// How well a set of scores ranked the leads that converted.
#[derive(SimpleObject)]
pub struct ScoreQuality {
    /// Leads with a score.
    pub scored: i32,
    /// Of them, those that converted.
    pub converted: i32,
    /// Area under the ROC curve: the chance a converting lead is scored above one that
    /// did not (0.5 is chance). Null unless both happened.
    pub auc: Option<f64>,
    /// The conversion rate of the top-scored tenth over everyone's (1 is no better than
    /// random). Null without a conversion.
    pub lift: Option<f64>,
    /// Conversion by score band, empty bands left out.
    pub calibration: Vec<ScoreBand>,
}

impl From<&backtest::Measure> for ScoreQuality {
    fn from(m: &backtest::Measure) -> Self {
        ScoreQuality {
            scored: m.scored.min(i32::MAX as usize) as i32,
            converted: m.converted.min(i32::MAX as usize) as i32,
            auc: m.auc,
            lift: m.lift,
            calibration: m.calibration.iter().map(Into::into).collect(),
        }
    }
}

/// The active built-in lead score, measured on the same leads.
#[derive(SimpleObject)]
pub struct BuiltInQuality {
    /// The model version.
    pub model_version: i32,
    /// True when the moment falls in the window the version was trained on: its figures
    /// then include leads it learned from.
    pub overlaps_training: bool,
    pub quality: ScoreQuality,
}

/// A plugin call that failed in a backtest.
#[derive(SimpleObject)]
pub struct BacktestFailure {
    pub contact_id: async_graphql::ID,
    pub message: String,
}

/// A version of a plugin scored as of a past moment, against who converted (a won deal
/// or a first order) within the following days.
#[derive(SimpleObject)]
pub struct PluginBacktest {
    /// The version scored.
    pub version: i32,
    /// The moment scored as of.
    pub as_of: DateTime<Utc>,
    /// True when the version's input query declares `$asOf` and so can read only what was
    /// known at the moment; false means it read today's data and its figures flatter it.
    pub point_in_time: bool,
    /// The outcome window in days.
    pub horizon_days: i32,
    /// Leads in the sample: contacts created before the moment that had not converted.
    pub leads: i32,
    /// The plugin's figures, over the leads it scored.
    pub plugin: ScoreQuality,
    /// The active built-in lead score's, over every lead of the sample; null without one.
    pub built_in: Option<BuiltInQuality>,
    /// Calls that failed.
    pub failed: i32,
    /// The first few failures.
    pub failures: Vec<BacktestFailure>,
    /// True when calls stopped early because most of them failed.
    pub stopped_early: bool,
}

/// `Plugin.backtest`.
pub(crate) async fn run_backtest(
    ctx: &Context<'_>,
    plugin: &s::plugin::Model,
    version: Option<i32>,
    as_of: Option<DateTime<Utc>>,
    horizon_days: Option<i32>,
    sample: Option<i32>,
) -> Result<PluginBacktest> {
    let who = principal(ctx)?;
    who.require(Scope::Admin).gql()?;
    let host = ctx
        .data_unchecked::<Option<Host>>()
        .as_ref()
        .ok_or_else(|| {
            to_graphql(rapport_engine::EngineError::Conflict(
                "plugins are not available on this server".into(),
            ))
        })?;
    let defaults = backtest::Options::default();
    let sample = match sample {
        None => defaults.sample,
        Some(n) => usize::try_from(n).map_err(|_| invalid("sample", "must be positive"))?,
    };
    let options = backtest::Options {
        version,
        as_of,
        horizon_days: horizon_days.map_or(defaults.horizon_days, i64::from),
        sample,
    };
    let b = backtest::backtest(db(ctx), host, who, &plugin.name, options)
        .await
        .gql()?;
    Ok(PluginBacktest {
        version: b.version.version,
        as_of: b.as_of,
        point_in_time: b.point_in_time,
        horizon_days: b.horizon_days as i32,
        leads: b.leads.min(i32::MAX as usize) as i32,
        plugin: ScoreQuality::from(&b.plugin),
        built_in: b.built_in.as_ref().map(|bi| BuiltInQuality {
            model_version: bi.version.version,
            overlaps_training: bi.overlaps_training,
            quality: ScoreQuality::from(&bi.measure),
        }),
        failed: b.failed.min(i32::MAX as usize) as i32,
        failures: b
            .failures
            .into_iter()
            .map(|f| BacktestFailure {
                contact_id: to_id(f.contact_id),
                message: f.message,
            })
            .collect(),
        stopped_early: b.stopped_early,
    })
}

/// A version scoring beside the active one, never shown or acted on.
#[derive(SimpleObject)]
pub struct PluginShadow {
    /// The shadow version's number.
    pub version: i32,
    /// Contacts it has scored.
    pub scored: i32,
    /// Its mean score over them.
    pub mean_score: Option<f64>,
    /// The active version's mean score over the same contacts.
    pub active_mean_score: Option<f64>,
    /// When it last scored.
    pub last_scored_at: Option<DateTime<Utc>>,
}

/// `Plugin.shadow`.
pub(crate) async fn shadow_of(
    ctx: &Context<'_>,
    plugin: &s::plugin::Model,
) -> Result<Option<PluginShadow>> {
    Ok(shadow::standing(db(ctx), plugin)
        .await
        .gql()?
        .map(|st| PluginShadow {
            version: st.version.version,
            scored: st.scored.min(i32::MAX as u64) as i32,
            mean_score: st.mean,
            active_mean_score: st.active_mean,
            last_scored_at: st.last_scored_at,
        }))
}

/// Writes: promoting or discarding a shadow version.
#[derive(Default)]
pub struct PluginShadowMutation;

#[Object]
impl PluginShadowMutation {
    /// Makes the plugin's shadow version the active one: from now on its scores are shown
    /// and its actions offered. Admin keys only.
    async fn promote_plugin_shadow(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<super::plugins::Plugin> {
        let p = shadow::promote(db(ctx), principal(ctx)?, &name)
            .await
            .gql()?;
        Ok(super::plugins::Plugin(p))
    }

    /// Drops the plugin's shadow version and its scores (the version stays listed).
    /// Admin keys only.
    async fn discard_plugin_shadow(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> Result<super::plugins::Plugin> {
        let p = shadow::discard(db(ctx), principal(ctx)?, &name)
            .await
            .gql()?;
        Ok(super::plugins::Plugin(p))
    }
}
