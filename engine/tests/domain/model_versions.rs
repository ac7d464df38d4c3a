//! Stored model versions stay bounded: each retraining adds a version, and only the newest
//! few (and the active one, however old) keep their parameters; the rest keep what they
//! measured.

use rapport_engine::clock;
use rapport_engine::intelligence::analytics::registry::{
    self, PARAMETERS_KEPT, Trained, TrainingRun,
};
use rapport_engine::values::ModelKind;
use serde_json::json;

use super::{database, owner};

fn run(auc: f64) -> TrainingRun {
    TrainingRun {
        kind: ModelKind::LeadScore,
        features: vec!["engagement".into()],
        rows: 100,
        positives: 20,
        window_from: clock::now() - chrono::Duration::days(90),
        window_to: clock::now(),
        trained: Trained::Model {
            parameters: json!({"weights": [auc]}),
            metrics: json!({"auc": auc}),
            auc: Some(auc),
        },
    }
}

#[tokio::test]
async fn only_the_newest_versions_and_the_active_one_keep_parameters() {
    let db = database().await;
    let who = owner(&db, "Versions").await;
    let ws = who.workspace_id;
    // The first version measures best, so every later one stays a candidate.
    registry::record(&db, ws, run(0.9)).await.unwrap();
    for i in 0..8 {
        registry::record(&db, ws, run(0.8 - f64::from(i) / 100.0))
            .await
            .unwrap();
    }
    let versions = registry::versions(&db, ws, Some(ModelKind::LeadScore))
        .await
        .unwrap();
    assert_eq!(versions.len(), 9);
    let kept: Vec<i32> = versions
        .iter()
        .filter(|v| v.parameters.is_some())
        .map(|v| v.version)
        .collect();
    assert_eq!(
        kept,
        vec![9, 8, 7, 6, 5, 1],
        "newest {PARAMETERS_KEPT} and the active"
    );
    // Every version still says how it measured.
    assert!(versions.iter().all(|v| v.metrics["auc"].is_number()));
    let active = versions.iter().find(|v| v.version == 1).unwrap();
    assert_eq!(active.status, "active");
    // A pruned version cannot be activated, and says why.
    let pruned = versions.iter().find(|v| v.version == 2).unwrap();
    let err = registry::activate(&db, &who, pruned.id).await.unwrap_err();
    assert!(err.to_string().contains("parameters were dropped"), "{err}");
    // A kept candidate can; the one it replaces keeps its parameters while it is among
    // the newest.
    let candidate = versions.iter().find(|v| v.version == 9).unwrap();
    registry::activate(&db, &who, candidate.id).await.unwrap();
    let (version, _) = registry::active::<serde_json::Value>(&db, ws, ModelKind::LeadScore)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(version.version, 9);
    // The next retraining drops the old active version's parameters: it is retired and
    // no longer among the newest.
    registry::record(&db, ws, run(0.5)).await.unwrap();
    let versions = registry::versions(&db, ws, Some(ModelKind::LeadScore))
        .await
        .unwrap();
    let kept: Vec<i32> = versions
        .iter()
        .filter(|v| v.parameters.is_some())
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, vec![10, 9, 8, 7, 6]);
}
