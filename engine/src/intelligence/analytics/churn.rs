//! Churn risk from engagement decay, for the customers BG/NBD cannot judge: a customer
//! who bought once has P(alive) = 1 under BG/NBD by construction, so a classifier learns
//! instead who goes silent.
//!
//! Training looks back one window: customers who had bought before `now − window` are
//! described as of then, and labelled churned when they neither ordered nor reached out
//! (a meeting, a message they sent, a page view, a form, any event) in the window since;
//! what the business sent them does not count as their engagement. Scoring describes
//! today's customers as of now.

use chrono::Duration;
use sea_orm::DatabaseConnection;

use super::behaviour::{Behaviour, Instant, Person, Touch, days};
use super::lead_score::HALF_LIFE_DAYS;
use super::registry::{self, GradeRule, StoredModel, Trained, TrainingRun};
use crate::clock;
use crate::error::Result;
use crate::intelligence::models::classifier::{Algorithm, Classifier, Split};
use crate::intelligence::models::features::{Column, FeatureTable};
use crate::values::{ModelKind, ModelStatus};
use rapport_schema::model_version;

/// The window in which silence counts as churn, in days.
pub const WINDOW_DAYS: i64 = 90;

/// Features of customers as of `as_of`.
fn features(b: &Behaviour, people: &[&Person], as_of: Instant) -> FeatureTable {
    let decay = |at: Instant| (-days(at, as_of) * std::f64::consts::LN_2 / HALF_LIFE_DAYS).exp();
    let mut columns: Vec<Vec<Option<f64>>> =
        (0..8).map(|_| Vec::with_capacity(people.len())).collect();
    for p in people {
        let orders: Vec<&(Instant, i64)> = b
            .orders
            .get(&p.id)
            .into_iter()
            .flatten()
            .filter(|(at, _)| *at < as_of)
            .collect();
        let touches: Vec<&(Touch, Instant)> = b
            .touches
            .get(&p.id)
            .into_iter()
            .flatten()
            .filter(|(_, at)| *at < as_of)
            .collect();
        let last_order = orders.iter().map(|(at, _)| *at).max();
        let last_touch = touches.iter().map(|(_, at)| *at).max();
        let spend: f64 = orders.iter().map(|(_, t)| *t as f64 / 100.0).sum();
        let values = [
            Some(orders.len() as f64),
            Some(spend.ln_1p()),
            last_order.map(|l| days(l, as_of)),
            Some(touches.iter().map(|(_, at)| decay(*at)).sum()),
            Some(
                touches
                    .iter()
                    .filter(|(kind, _)| *kind == Touch::Inbound)
                    .map(|(_, at)| decay(*at))
                    .sum(),
            ),
            Some(
                touches
                    .iter()
                    .filter(|(_, at)| days(*at, as_of) <= 90.0)
                    .count() as f64,
            ),
            last_touch.map(|l| days(l, as_of)),
            Some(days(p.created_at, as_of).max(0.0)),
        ];
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
    }
    let names = [
        "orders",
        "spend_log",
        "days_since_last_order",
        "engagement",
        "replies",
        "touches_90d",
        "days_since_last_touch",
        "tenure_days",
    ];
    let mut table = FeatureTable::with_rows(people.len());
    for (name, column) in names.into_iter().zip(columns) {
        table
            .push(name, Column::Numeric(column))
            .expect("one value per customer");
    }
    super::lead_score::push_mail_features(&mut table, b, people, as_of, decay);
    table
}

/// Trains the churn classifier, records it and rescores customers when it is active.
pub async fn train(
    db: &DatabaseConnection,
    workspace_id: i64,
    min_positives: usize,
    algorithm: Algorithm,
) -> Result<model_version::Model> {
    let now = clock::now();
    let window_from = now - Duration::days(WINDOW_DAYS);
    let (from, to) = (window_from.timestamp(), now.timestamp());
    let b = Behaviour::load(db, workspace_id).await?;
    let customers: Vec<&Person> = b
        .people
        .iter()
        .filter(|p| b.converted_at.get(&p.id).is_some_and(|&c| c < from))
        .collect();
    let labels: Vec<bool> = customers
        .iter()
        .map(|p| {
            let ordered = b
                .orders
                .get(&p.id)
                .into_iter()
                .flatten()
                .any(|(at, _)| *at >= from && *at <= to);
            let engaged = b
                .touches
                .get(&p.id)
                .into_iter()
                .flatten()
                .filter(|(kind, _)| !matches!(kind, Touch::Call | Touch::Other))
                .any(|(_, at)| *at >= from && *at <= to);
            !(ordered || engaged)
        })
        .collect();
    let churned = labels.iter().filter(|&&l| l).count();
    let stayed = labels.len() - churned;
    let table = features(&b, &customers, from);
    let trained = if churned.min(stayed) < min_positives {
        Trained::Refused {
            message: format!(
                "too little data: {churned} of {} customers went silent in the last {WINDOW_DAYS} \
                 days; at least {min_positives} who did and {min_positives} who did not are needed",
                customers.len()
            ),
        }
    } else {
        let (classifier, report) = super::cpu_bound(|| {
            Classifier::train(&table, &labels, &Split::stratified(&labels), algorithm)
        })?;
        let model = StoredModel {
            classifier,
            grades: GradeRule::Thresholds([70.0, 30.0, 0.0]),
        };
        Trained::classifier(model, &report)
    };
    let version = registry::record(
        db,
        workspace_id,
        TrainingRun {
            kind: ModelKind::Churn,
            features: table.names().to_vec(),
            rows: customers.len(),
            positives: churned,
            window_from,
            window_to: now,
            trained,
        },
    )
    .await?;
    if version.status == ModelStatus::Active.as_str() {
        rescore_with(db, workspace_id, &b).await?;
    }
    Ok(version)
}

/// Scores every customer with the active churn model; returns how many.
pub async fn rescore(db: &DatabaseConnection, workspace_id: i64) -> Result<usize> {
    if registry::active::<serde_json::Value>(db, workspace_id, ModelKind::Churn)
        .await?
        .is_none()
    {
        return Ok(0);
    }
    let b = Behaviour::load(db, workspace_id).await?;
    rescore_with(db, workspace_id, &b).await
}

/// Scores every customer from already loaded behaviour.
pub async fn rescore_with(
    db: &DatabaseConnection,
    workspace_id: i64,
    b: &Behaviour,
) -> Result<usize> {
    let Some((version, model)) =
        registry::active::<StoredModel>(db, workspace_id, ModelKind::Churn).await?
    else {
        return Ok(0);
    };
    let customers: Vec<&Person> = b
        .people
        .iter()
        .filter(|p| b.converted_at.contains_key(&p.id))
        .collect();
    let predictions =
        model
            .classifier
            .predict(&features(b, &customers, clock::now().timestamp()))?;
    let ids: Vec<i64> = customers.iter().map(|p| p.id).collect();
    let new = registry::graded(&ids, predictions, &model.grades, &[]);
    registry::replace_scores(db, workspace_id, ModelKind::Churn, version.id, &new).await?;
    Ok(new.len())
}
