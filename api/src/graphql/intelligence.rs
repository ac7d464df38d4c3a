//! The built-in models on the graph: scores on contacts and deals, the model registry,
//! and the mutations that train and activate versions.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use rapport_engine::intelligence::analytics::customer_value::{CustomerValue, CustomerValueModel};
use rapport_engine::intelligence::analytics::recommendations::{self, RecommendationModel};
use rapport_engine::intelligence::analytics::{self, insights, registry};
use rapport_engine::values;
use rapport_schema as s;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::error::{OrGraphql, invalid, to_graphql};
use crate::graphql::batching::Dispatcher;
use crate::graphql::context::principal;
use crate::graphql::enums::{ClassifierAlgorithm, ModelKind, ModelStatus, RiskLevel};
use crate::graphql::ids::{parse_id, to_id};

/// Current scores by (model kind, subject id), one statement per kind per batch.
pub struct Scores {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<(values::ModelKind, i64)> for Scores {
    type Value = s::score::Model;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[(values::ModelKind, i64)],
    ) -> Result<HashMap<(values::ModelKind, i64), s::score::Model>, Self::Error> {
        let mut by_kind: HashMap<values::ModelKind, Vec<i64>> = HashMap::new();
        for (kind, id) in keys {
            by_kind.entry(*kind).or_default().push(*id);
        }
        let mut found = HashMap::new();
        for (kind, ids) in by_kind {
            let scores = registry::scores_for(&self.db, self.workspace_id, kind, &ids)
                .await
                .map_err(to_graphql)?;
            found.extend(scores.into_iter().map(|(id, s)| ((kind, id), s)));
        }
        Ok(found)
    }
}

/// Model versions by id.
pub struct Versions {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<i64> for Versions {
    type Value = s::model_version::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        Ok(s::model_version::Entity::find()
            .filter(s::model_version::Column::WorkspaceId.eq(self.workspace_id))
            .filter(s::model_version::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(|e| to_graphql(e.into()))?
            .into_iter()
            .map(|v| (v.id, v))
            .collect())
    }
}

/// Adds the score loaders to one request.
pub fn attach(
    request: async_graphql::Request,
    d: &Dispatcher,
    db: &DatabaseConnection,
    workspace_id: i64,
) -> async_graphql::Request {
    let scores = Scores {
        db: db.clone(),
        workspace_id,
    };
    let versions = Versions {
        db: db.clone(),
        workspace_id,
    };
    let active = ActiveModels {
        db: db.clone(),
        workspace_id,
    };
    let orders = OrdersOf {
        db: db.clone(),
        workspace_id,
    };
    let owned = OwnedProducts {
        db: db.clone(),
        workspace_id,
    };
    let now = std::time::Duration::ZERO;
    request
        .data(DataLoader::new(scores, d.spawner()).delay(now))
        .data(DataLoader::new(versions, d.spawner()).delay(now))
        .data(DataLoader::new(active, d.spawner()).delay(now))
        .data(DataLoader::new(orders, d.spawner()).delay(now))
        .data(DataLoader::new(owned, d.spawner()).delay(now))
}

/// The current score of one subject by one kind of model.
pub async fn current(
    ctx: &Context<'_>,
    kind: values::ModelKind,
    subject: i64,
) -> Result<Option<Score>> {
    Ok(ctx
        .data_unchecked::<DataLoader<Scores>>()
        .load_one((kind, subject))
        .await?
        .map(Score))
}

/// The number of a model version (0 when it is gone).
pub async fn version_number(ctx: &Context<'_>, id: i64) -> Result<i32> {
    Ok(ctx
        .data_unchecked::<DataLoader<Versions>>()
        .load_one(id)
        .await?
        .map_or(0, |v| v.version))
}

/// One feature's push on a score.
#[derive(SimpleObject)]
pub struct ScoreReason {
    /// The feature, as named in the model's feature list.
    pub feature: String,
    /// Its contribution to the log-odds, relative to an average row: positive raises the
    /// score, negative lowers it.
    pub contribution: f64,
}

/// The reasons stored with a built-in score.
pub fn reason_list(json: &serde_json::Value) -> Vec<ScoreReason> {
    serde_json::from_value::<Vec<rapport_engine::intelligence::models::classifier::Contribution>>(
        json.clone(),
    )
    .unwrap_or_default()
    .into_iter()
    .map(|c| ScoreReason {
        feature: c.feature,
        contribution: c.weight,
    })
    .collect()
}

/// A score given by a trained model.
pub struct Score(pub s::score::Model);

#[Object]
impl Score {
    /// 0–100: the model's probability, in percent.
    async fn score(&self) -> f64 {
        self.0.score
    }
    /// A (best) to D.
    async fn grade(&self) -> Option<&str> {
        self.0.grade.as_deref()
    }
    /// The strongest contributions, largest first.
    async fn reasons(&self) -> Vec<ScoreReason> {
        reason_list(&self.0.reasons)
    }
    async fn computed_at(&self) -> DateTime<Utc> {
        self.0.computed_at
    }
    /// The model version that gave it.
    async fn model(&self, ctx: &Context<'_>) -> Result<Option<ModelVersion>> {
        Ok(ctx
            .data_unchecked::<DataLoader<Versions>>()
            .load_one(self.0.model_version_id)
            .await?
            .map(ModelVersion))
    }
}

/// Where a win probability came from.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProbabilitySource {
    /// The active win-probability model.
    Model,
    /// The stage's default probability (no model is active or the deal is unscored).
    StageDefault,
    /// The deal is closed: 100 when won, 0 when lost.
    Closed,
}

/// A deal's chance of being won.
#[derive(SimpleObject)]
pub struct WinProbability {
    /// 0–100.
    pub probability: f64,
    pub source: ProbabilitySource,
    /// The model's score with its reasons, when a model gave it.
    pub score: Option<Score>,
}

/// A trained version of a built-in model.
pub struct ModelVersion(pub s::model_version::Model);

#[Object]
impl ModelVersion {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn kind(&self) -> ModelKind {
        ModelKind::from_db(&self.0.kind)
    }
    /// 1, 2, ... per model kind.
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn status(&self) -> ModelStatus {
        ModelStatus::from_db(&self.0.status)
    }
    /// Why it is not active, or why it could not be trained.
    async fn message(&self) -> Option<&str> {
        self.0.message.as_deref()
    }
    /// Area under the ROC curve on held-out rows.
    async fn auc(&self) -> Option<f64> {
        self.0.metrics.get("auc").and_then(|v| v.as_f64())
    }
    /// Mean log loss on held-out rows.
    async fn log_loss(&self) -> Option<f64> {
        self.0.metrics.get("log_loss").and_then(|v| v.as_f64())
    }
    /// Everything measured: AUC, log loss, calibration bins, row counts, fit time.
    async fn metrics(&self) -> Json<serde_json::Value> {
        Json(self.0.metrics.clone())
    }
    /// The raw features the model reads.
    async fn features(&self) -> Vec<String> {
        values::json_strings(&self.0.features)
    }
    /// Labelled rows used (training and held-out).
    async fn rows(&self) -> i64 {
        self.0.rows_used
    }
    async fn positives(&self) -> i64 {
        self.0.positives
    }
    async fn window_from(&self) -> DateTime<Utc> {
        self.0.window_from
    }
    async fn window_to(&self) -> DateTime<Utc> {
        self.0.window_to
    }
    async fn trained_at(&self) -> DateTime<Utc> {
        self.0.trained_at
    }
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.activated_at
    }
    /// For behaviour segments: each cluster with its centroid; empty for other kinds.
    async fn clusters(&self) -> Vec<SegmentCluster> {
        let model = self
            .0
            .parameters
            .clone()
            .and_then(|p| serde_json::from_value::<analytics::segments::SegmentModel>(p).ok());
        model
            .map(|m| m.clusters)
            .unwrap_or_default()
            .into_iter()
            .map(|c| SegmentCluster {
                index: c.index as i32,
                name: c.name,
                size: c.size as i32,
                centroid: analytics::segments::FEATURES
                    .iter()
                    .zip(c.centroid)
                    .map(|(f, value)| FeatureValue {
                        feature: f.to_string(),
                        value,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// One behavioural cluster.
#[derive(SimpleObject)]
pub struct SegmentCluster {
    pub index: i32,
    /// The features furthest from average, in words.
    pub name: String,
    /// Contacts in it.
    pub size: i32,
    /// The centroid in the features' own units.
    pub centroid: Vec<FeatureValue>,
}

/// A feature and its value.
#[derive(SimpleObject)]
pub struct FeatureValue {
    pub feature: String,
    pub value: f64,
}

/// Reads about models.
#[derive(Default)]
pub struct IntelligenceQuery;

#[Object]
impl IntelligenceQuery {
    /// Trained model versions, newest first.
    async fn models(
        &self,
        ctx: &Context<'_>,
        kind: Option<ModelKind>,
    ) -> Result<Vec<ModelVersion>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            registry::versions(db, who.workspace_id, kind.map(Into::into))
                .await
                .gql()?
                .into_iter()
                .map(ModelVersion)
                .collect(),
        )
    }
}

/// Training and activating models.
#[derive(Default)]
pub struct IntelligenceMutation;

#[Object]
impl IntelligenceMutation {
    /// Trains a new version from this workspace's data. It becomes active (and rescores)
    /// only when it measures at least as well as the active version; with too little
    /// data the version is recorded as INSUFFICIENT_DATA with the reason.
    async fn train_model(
        &self,
        ctx: &Context<'_>,
        kind: ModelKind,
        #[graphql(desc = "Lead score: lowest A, B and C scores (default: quartiles).")]
        grade_thresholds: Option<Vec<f64>>,
        #[graphql(desc = "Fewest examples of each class to train on (default 50).")]
        min_positives: Option<i32>,
        #[graphql(desc = "Lead score: the conversion window in days (default 90).")]
        window_days: Option<i32>,
        #[graphql(
            desc = "Lead score, win probability, churn: the classifier (default AUTO, the better validation AUC)."
        )]
        algorithm: Option<ClassifierAlgorithm>,
    ) -> Result<ModelVersion> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let options = rapport_engine::intelligence::analytics::trainings::TrainRequest {
            grade_thresholds,
            min_positives,
            window_days,
            algorithm: algorithm.map(Into::into),
        }
        .options()
        .gql()?;
        Ok(ModelVersion(
            analytics::train(db, who, kind.into(), &options)
                .await
                .gql()?,
        ))
    }

    /// Makes a trained version active (admin), for a candidate judged good by a person.
    async fn activate_model(&self, ctx: &Context<'_>, id: ID) -> Result<ModelVersion> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        let version = registry::activate(db, who, parse_id("id", &id)?)
            .await
            .gql()?;
        analytics::rescore_all(db, who.workspace_id).await.gql()?;
        Ok(ModelVersion(version))
    }
}

/// An active model with its parameters parsed once per request.
pub struct ActiveModel {
    /// The version row.
    pub version: s::model_version::Model,
    /// Set for the customer-value kind.
    pub customer_value: Option<CustomerValueModel>,
    /// Set for the recommendations kind.
    pub recommendations: Option<RecommendationModel>,
}

/// The active version of each model kind.
pub struct ActiveModels {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<values::ModelKind> for ActiveModels {
    type Value = Arc<ActiveModel>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[values::ModelKind],
    ) -> Result<HashMap<values::ModelKind, Self::Value>, Self::Error> {
        let mut found = HashMap::new();
        for &kind in keys {
            let Some((version, parameters)) =
                registry::active::<serde_json::Value>(&self.db, self.workspace_id, kind)
                    .await
                    .map_err(to_graphql)?
            else {
                continue;
            };
            found.insert(
                kind,
                Arc::new(ActiveModel {
                    customer_value: (kind == values::ModelKind::CustomerValue)
                        .then(|| serde_json::from_value(parameters.clone()).ok())
                        .flatten(),
                    recommendations: (kind == values::ModelKind::Recommendations)
                        .then(|| serde_json::from_value(parameters.clone()).ok())
                        .flatten(),
                    version,
                }),
            );
        }
        Ok(found)
    }
}

/// Each contact's paid orders as (placed at, total in minor units).
pub struct OrdersOf {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<i64> for OrdersOf {
    type Value = Vec<(i64, i64)>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        use sea_orm::QuerySelect;
        let rows: Vec<(i64, String, DateTime<Utc>, i64)> = s::order::Entity::find()
            .select_only()
            .columns([
                s::order::Column::ContactId,
                s::order::Column::Status,
                s::order::Column::PlacedAt,
                s::order::Column::TotalMinor,
            ])
            .filter(s::order::Column::WorkspaceId.eq(self.workspace_id))
            .filter(s::order::Column::ContactId.is_in(keys.iter().copied()))
            .filter(s::order::Column::DeletedAt.is_null())
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(|e| to_graphql(e.into()))?;
        let mut out: HashMap<i64, Self::Value> = HashMap::new();
        for (contact, status, placed, total) in rows {
            if matches!(
                values::OrderStatus::from_db(&status),
                values::OrderStatus::Cancelled | values::OrderStatus::Refunded
            ) {
                continue;
            }
            out.entry(contact)
                .or_default()
                .push((placed.timestamp(), total));
        }
        Ok(out)
    }
}

/// The products each contact has bought.
pub struct OwnedProducts {
    db: DatabaseConnection,
    workspace_id: i64,
}

impl Loader<i64> for OwnedProducts {
    type Value = BTreeSet<i64>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        recommendations::owned_by(&self.db, self.workspace_id, keys)
            .await
            .map_err(to_graphql)
    }
}

async fn active_model(
    ctx: &Context<'_>,
    kind: values::ModelKind,
) -> Result<Option<Arc<ActiveModel>>> {
    ctx.data_unchecked::<DataLoader<ActiveModels>>()
        .load_one(kind)
        .await
}

/// A customer's value under the active customer-value model.
pub struct Clv {
    value: CustomerValue,
    weeks: f64,
    version: s::model_version::Model,
}

#[Object]
impl Clv {
    /// P(the customer is still buying), by the workspace model's BG/NBD or Pareto/NBD.
    async fn probability_alive(&self) -> f64 {
        self.value.probability_alive
    }
    /// Expected purchases over the horizon.
    async fn expected_purchases(&self) -> f64 {
        self.value.expected_purchases
    }
    /// Expected spend over the horizon (BG/NBD × Gamma-Gamma); null when spend could not
    /// be fitted.
    async fn expected_value(&self) -> Option<f64> {
        self.value.expected_value
    }
    /// The horizon, in weeks.
    async fn weeks(&self) -> f64 {
        self.weeks
    }
    /// Purchases after the first (distinct days).
    async fn repeat_purchases(&self) -> f64 {
        self.value.summary.history.frequency
    }
    async fn orders(&self) -> i32 {
        self.value.summary.purchases.orders as i32
    }
    async fn model(&self) -> ModelVersion {
        ModelVersion(self.version.clone())
    }
}

/// How likely a customer is to have stopped buying.
#[derive(SimpleObject)]
pub struct ChurnRisk {
    /// 0–1: 1 − P(alive).
    pub risk: f64,
    /// LOW below 0.3, HIGH from 0.7.
    pub level: RiskLevel,
    /// How it was computed.
    pub method: String,
}

/// RFM scores, 1 (worst) to 5 (best), against the population at the last training.
#[derive(SimpleObject)]
pub struct Rfm {
    pub recency: i32,
    pub frequency: i32,
    pub monetary: i32,
    /// The named segment ("Champions", "At risk", ...).
    pub segment: String,
    /// The same segment as the value filters (`rfm.segment`) and triggers take.
    pub segment_key: crate::graphql::enums::RfmSegment,
}

async fn customer_value(ctx: &Context<'_>, contact: i64, weeks: f64) -> Result<Option<Clv>> {
    let Some(model) = active_model(ctx, values::ModelKind::CustomerValue).await? else {
        return Ok(None);
    };
    let Some(cv) = &model.customer_value else {
        return Ok(None);
    };
    let orders = ctx
        .data_unchecked::<DataLoader<OrdersOf>>()
        .load_one(contact)
        .await?
        .unwrap_or_default();
    Ok(cv
        .evaluate(&orders, crate::graphql::context::as_of(ctx), weeks)
        .map(|value| Clv {
            value,
            weeks,
            version: model.version.clone(),
        }))
}

/// `contact.clv`.
pub async fn clv(ctx: &Context<'_>, contact: i64, weeks: f64) -> Result<Option<Clv>> {
    if !(weeks > 0.0 && weeks <= 520.0) {
        return Err(invalid("weeks", "must be more than 0 and at most 520"));
    }
    customer_value(ctx, contact, weeks).await
}

/// `contact.churnRisk`, as of the request (see the engine's `insights::churn_risk`).
pub async fn churn_risk(ctx: &Context<'_>, contact: i64) -> Result<Option<ChurnRisk>> {
    let value = customer_value(ctx, contact, 52.0).await?;
    let repeat_buyer = value
        .as_ref()
        .is_some_and(|v| v.value.summary.history.frequency >= 1.0);
    // The classifier's score is read only when BG/NBD cannot judge.
    let score = if repeat_buyer {
        None
    } else {
        current(ctx, values::ModelKind::Churn, contact)
            .await?
            .map(|s| s.0.score)
    };
    Ok(
        insights::churn_risk(value.as_ref().map(|v| &v.value), score).map(|c| ChurnRisk {
            risk: c.risk,
            level: c.level.into(),
            method: c.method.as_str().into(),
        }),
    )
}

/// `contact.rfm`.
pub async fn rfm(ctx: &Context<'_>, contact: i64) -> Result<Option<Rfm>> {
    Ok(customer_value(ctx, contact, 52.0).await?.map(|v| {
        let r = v.value.rfm;
        Rfm {
            recency: r.recency.into(),
            frequency: r.frequency.into(),
            monetary: r.monetary.into(),
            segment: r.segment().name().to_string(),
            segment_key: values::RfmSegment::from(r.segment()).into(),
        }
    }))
}

/// `contact.recommendations`.
pub async fn recommend(
    ctx: &Context<'_>,
    contact: i64,
    first: i32,
) -> Result<Vec<recommendations::Recommendation>> {
    if !(0..=50).contains(&first) {
        return Err(invalid("first", "must be between 0 and 50"));
    }
    let Some(model) = active_model(ctx, values::ModelKind::Recommendations).await? else {
        return Ok(Vec::new());
    };
    let Some(rec) = &model.recommendations else {
        return Ok(Vec::new());
    };
    let owned = ctx
        .data_unchecked::<DataLoader<OwnedProducts>>()
        .load_one(contact)
        .await?
        .unwrap_or_default();
    Ok(rec.recommend(&owned, first as usize))
}

/// `product.frequentlyBoughtTogether`.
pub async fn bought_together(
    ctx: &Context<'_>,
    product: i64,
    first: i32,
) -> Result<Vec<recommendations::Neighbour>> {
    if !(0..=50).contains(&first) {
        return Err(invalid("first", "must be between 0 and 50"));
    }
    let Some(model) = active_model(ctx, values::ModelKind::Recommendations).await? else {
        return Ok(Vec::new());
    };
    let Some(rec) = &model.recommendations else {
        return Ok(Vec::new());
    };
    let mut list: Vec<recommendations::Neighbour> =
        rec.neighbours.get(&product).cloned().unwrap_or_default();
    // Bought together = most lift among pairs seen often enough; cosine breaks ties.
    list.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then(b.cosine.total_cmp(&a.cosine))
    });
    list.truncate(first as usize);
    Ok(list)
}
