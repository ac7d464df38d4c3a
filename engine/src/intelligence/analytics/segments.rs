//! Behavioural segments: k-means (linfa-clustering) on standardised behaviour, with k
//! chosen by the mean silhouette, each cluster described by its centroid.
//!
//! Every contact's cluster is stored as a score of kind `behaviour_segments` (the score
//! is the cluster number, the grade its name), so a page of contacts reads its segments
//! with one batched lookup like any other score.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView1, Axis};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use super::behaviour::{Behaviour, Touch, days};
use super::registry::{self, NewScore, Trained, TrainingRun};
use crate::clock;
use crate::error::{EngineError, Result};
use crate::values::ModelKind;
use rapport_schema::model_version;

/// The cluster counts tried.
pub const K_RANGE: std::ops::RangeInclusive<usize> = 2..=8;
/// Silhouettes are computed on at most this many contacts (the statistic is quadratic).
pub const SILHOUETTE_SAMPLE: usize = 2000;

/// The behaviour each contact is described by.
pub const FEATURES: [&str; 6] = [
    "orders",
    "spend_log",
    "days_since_last_order",
    "touches_90d",
    "meetings_90d",
    "tenure_days",
];

/// One cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// 0-based.
    pub index: usize,
    /// A short description from the centroid.
    pub name: String,
    /// Contacts in it.
    pub size: usize,
    /// The centroid in the features' own units, in [`FEATURES`] order.
    pub centroid: Vec<f64>,
}

/// What is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentModel {
    /// The clusters.
    pub clusters: Vec<Cluster>,
    /// Mean silhouette per k tried.
    pub silhouettes: Vec<(usize, f64)>,
}

fn behaviour_matrix(b: &Behaviour, now: i64) -> (Vec<i64>, Array2<f64>) {
    let ids: Vec<i64> = b.people.iter().map(|p| p.id).collect();
    let mut x = Array2::<f64>::zeros((ids.len(), FEATURES.len()));
    for (i, p) in b.people.iter().enumerate() {
        let orders = b.orders.get(&p.id).map(Vec::as_slice).unwrap_or_default();
        let spend: f64 = orders.iter().map(|(_, t)| *t as f64 / 100.0).sum();
        let last_order = orders.iter().map(|(at, _)| *at).max();
        let touches = b.touches.get(&p.id).map(Vec::as_slice).unwrap_or_default();
        let recent = |only_meetings: bool| {
            touches
                .iter()
                .filter(|(kind, at)| {
                    days(*at, now) <= 90.0 && (!only_meetings || *kind == Touch::Meeting)
                })
                .count() as f64
        };
        let tenure = days(p.created_at, now).max(0.0);
        x[[i, 0]] = orders.len() as f64;
        x[[i, 1]] = spend.ln_1p();
        // Never ordered reads as "as long ago as they have been here".
        x[[i, 2]] = last_order.map_or(tenure, |l| days(l, now).max(0.0));
        x[[i, 3]] = recent(false);
        x[[i, 4]] = recent(true);
        x[[i, 5]] = tenure;
    }
    (ids, x)
}

fn standardise(x: &Array2<f64>) -> (Array2<f64>, Vec<f64>, Vec<f64>) {
    let means: Vec<f64> = x.mean_axis(Axis(0)).expect("rows").to_vec();
    let scales: Vec<f64> = x
        .std_axis(Axis(0), 0.0)
        .iter()
        .map(|s| if *s > 1e-12 { *s } else { 1.0 })
        .collect();
    let mut z = x.clone();
    for (j, mut col) in z.columns_mut().into_iter().enumerate() {
        col.mapv_inplace(|v| (v - means[j]) / scales[j]);
    }
    (z, means, scales)
}

fn distance(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Mean silhouette of the labelled points (the first `SILHOUETTE_SAMPLE` of a fixed
/// stride through them, so the estimate is deterministic).
pub fn silhouette(z: &Array2<f64>, labels: &[usize], k: usize) -> f64 {
    let n = z.nrows();
    let stride = n.div_ceil(SILHOUETTE_SAMPLE).max(1);
    let sample: Vec<usize> = (0..n).step_by(stride).collect();
    let mut total = 0.0;
    let mut counted = 0usize;
    for &i in &sample {
        let mut sums = vec![0.0; k];
        let mut counts = vec![0usize; k];
        for &j in &sample {
            if i != j {
                sums[labels[j]] += distance(z.row(i), z.row(j));
                counts[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue; // a singleton's silhouette is 0 by convention
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
        }
        counted += 1;
    }
    total / counted.max(1) as f64
}

fn name_cluster(centroid_z: ArrayView1<f64>) -> String {
    // The two features furthest from average describe the cluster.
    let mut order: Vec<usize> = (0..FEATURES.len()).collect();
    order.sort_by(|&a, &b| centroid_z[b].abs().total_cmp(&centroid_z[a].abs()));
    order
        .iter()
        .take(2)
        .map(|&j| {
            let (high, low) = match FEATURES[j] {
                "orders" => ("many orders", "few orders"),
                "spend_log" => ("high spend", "low spend"),
                "days_since_last_order" => ("long since ordering", "ordered recently"),
                "touches_90d" => ("engaged lately", "quiet lately"),
                "meetings_90d" => ("meeting often", "no recent meetings"),
                _ => ("long-standing", "new"),
            };
            if centroid_z[j] >= 0.0 { high } else { low }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Clusters the workspace's contacts, records the model and stores each contact's segment.
pub async fn train(
    db: &DatabaseConnection,
    workspace_id: i64,
    min_contacts: usize,
) -> Result<model_version::Model> {
    let now = clock::now();
    let behaviour = Behaviour::load(db, workspace_id).await?;
    let (ids, x) = behaviour_matrix(&behaviour, now.timestamp());
    let needed = min_contacts.max(*K_RANGE.end() * 5);
    let features: Vec<String> = FEATURES.map(String::from).to_vec();
    let run = |trained| TrainingRun {
        kind: ModelKind::BehaviourSegments,
        features: features.clone(),
        rows: ids.len(),
        positives: 0,
        window_from: now,
        window_to: now,
        trained,
    };
    if ids.len() < needed {
        let message = format!(
            "too little data: {} contacts; at least {needed} are needed",
            ids.len()
        );
        return registry::record(db, workspace_id, run(Trained::Refused { message })).await;
    }
    let started = std::time::Instant::now();
    let (z, means, scales) = standardise(&x);
    let dataset = DatasetBase::from(z.clone());
    let (best, silhouettes) = super::cpu_bound(|| {
        let mut best: Option<(f64, usize, Array2<f64>, Vec<usize>)> = None;
        let mut silhouettes = Vec::new();
        for k in K_RANGE {
            let model = KMeans::params(k)
                .n_runs(4)
                .max_n_iterations(200)
                .tolerance(1e-6)
                .fit(&dataset)
                .map_err(|e| EngineError::invalid("segments", format!("k-means failed: {e}")))?;
            let labels: Vec<usize> = model.predict(&z).to_vec();
            let score = silhouette(&z, &labels, k);
            silhouettes.push((k, score));
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, k, model.centroids().clone(), labels));
            }
        }
        Ok::<_, EngineError>((best, silhouettes))
    })?;
    let (score, k, centroids, labels) = best.expect("at least one k");
    let clusters: Vec<Cluster> = (0..k)
        .map(|c| Cluster {
            index: c,
            name: name_cluster(centroids.row(c)),
            size: labels.iter().filter(|&&l| l == c).count(),
            centroid: centroids
                .row(c)
                .iter()
                .enumerate()
                .map(|(j, v)| v * scales[j] + means[j])
                .collect(),
        })
        .collect();
    let metrics = serde_json::json!({
        "k": k,
        "silhouette": score,
        "silhouettes": silhouettes,
        "contacts": ids.len(),
        "fit_seconds": started.elapsed().as_secs_f64(),
    });
    let model = SegmentModel {
        clusters: clusters.clone(),
        silhouettes,
    };
    let version = registry::record(
        db,
        workspace_id,
        run(Trained::Model {
            parameters: serde_json::to_value(&model).expect("a model serialises"),
            metrics,
            auc: None,
        }),
    )
    .await?;
    let scores: Vec<NewScore> = ids
        .iter()
        .zip(&labels)
        .map(|(&id, &c)| NewScore {
            subject_id: id,
            score: c as f64,
            grade: Some(clusters[c].name.clone()),
            reasons: Vec::new(),
        })
        .collect();
    registry::replace_scores(
        db,
        workspace_id,
        ModelKind::BehaviourSegments,
        version.id,
        &scores,
    )
    .await?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silhouette_of_separated_groups_is_near_one() {
        let mut z = Array2::zeros((40, 2));
        let mut labels = Vec::new();
        for i in 0..40 {
            let group = i / 20;
            z[[i, 0]] = group as f64 * 100.0 + (i % 5) as f64 * 0.1;
            z[[i, 1]] = (i % 3) as f64 * 0.1;
            labels.push(group);
        }
        assert!(silhouette(&z, &labels, 2) > 0.95);
        // Splitting arbitrarily scores badly.
        let shuffled: Vec<usize> = (0..40).map(|i| i % 2).collect();
        assert!(silhouette(&z, &shuffled, 2) < 0.1);
    }
}
