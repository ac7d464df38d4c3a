//! Scores that act: a score entering a band enrolls once per entry, a churn level
//! becoming high enrolls, and the stored insights are what segments filter on.

use std::sync::Arc;

use chrono::Utc;
use rapport_engine::clock::ManualClock;
use rapport_engine::crm::filters::{ContactFilter, Evaluation, Filter};
use rapport_engine::engagement::outbound::{Context, Outbound};
use rapport_engine::engagement::sequences::{self, triggers};
use rapport_engine::intelligence::analytics::{insights, registry};
use rapport_engine::platform::auth::Principal;
use rapport_engine::platform::email::Mailer;
use rapport_engine::platform::queue::Queue;
use rapport_engine::platform::records::{self, Deleted};
use rapport_engine::values::ModelKind;
use rapport_schema::{contact, contact_insight, model_version, sequence_enrollment};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};
use serde_json::json;

use crate::{contact, database, owner};

/// An active version of a model, as training would leave it.
async fn active_model(db: &DatabaseConnection, who: &Principal, kind: ModelKind) -> i64 {
    let now = Utc::now();
    model_version::ActiveModel {
        workspace_id: Set(who.workspace_id),
        kind: Set(kind.as_str().into()),
        version: Set(1),
        status: Set("active".into()),
        metrics: Set(json!({})),
        features: Set(json!([])),
        parameters: Set(Some(json!({}))),
        rows_used: Set(0),
        positives: Set(0),
        window_from: Set(now),
        window_to: Set(now),
        trained_at: Set(now),
        activated_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("model version")
    .id
}

async fn score(
    db: &DatabaseConnection,
    who: &Principal,
    kind: ModelKind,
    version: i64,
    scores: &[(i64, f64)],
) {
    let new: Vec<registry::NewScore> = scores
        .iter()
        .map(|&(subject_id, score)| registry::NewScore {
            subject_id,
            score,
            grade: None,
            reasons: Vec::new(),
        })
        .collect();
    registry::store_scores(db, who.workspace_id, kind, version, &new)
        .await
        .expect("scores");
}

/// What the trigger scan needs; nothing here sends email.
fn context(db: &DatabaseConnection) -> Context {
    let outbox = std::env::temp_dir().join("rapport_t_score_triggers_outbox");
    Context {
        db: db.clone(),
        queue: Queue::new(db).expect("queue"),
        outbound: Outbound {
            mailer: Mailer::configure(None, outbox).expect("outbox"),
            public_url: "http://localhost".into(),
            failure_limit: 5,
            claim_timeout: std::time::Duration::from_secs(60),
            worker: "test".into(),
            dead_after: std::time::Duration::from_secs(60),
            probe_delay: std::time::Duration::from_secs(1),
        },
        clock: Arc::new(ManualClock::new()),
        plugins: None,
    }
}

/// A sequence with these triggers, active, re-entry on.
async fn triggered(
    db: &DatabaseConnection,
    who: &Principal,
    name: &str,
    triggers: serde_json::Value,
) -> i64 {
    let clock = ManualClock::new();
    let s = sequences::create(
        db,
        who,
        &clock,
        &json!({
            "name": name,
            "fromEmail": "hello@shop.example",
            "allowReentry": true,
            "triggers": triggers,
            "start": "tag",
            "steps": [{"id": "tag", "kind": "updateContact", "addTags": ["followed_up"]}]
        }),
    )
    .await
    .expect("create");
    sequences::activate(db, who, &clock, s.sequence.id)
        .await
        .expect("activate");
    s.sequence.id
}

/// How many times each of `contacts` was enrolled in the sequence.
async fn enrollments(db: &DatabaseConnection, sequence_id: i64, contacts: &[i64]) -> Vec<usize> {
    let rows: Vec<i64> = sequence_enrollment::Entity::find()
        .select_only()
        .column(sequence_enrollment::Column::ContactId)
        .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
        .into_tuple()
        .all(db)
        .await
        .expect("enrollments");
    contacts
        .iter()
        .map(|c| rows.iter().filter(|r| *r == c).count())
        .collect()
}

async fn finish_all(db: &DatabaseConnection, sequence_id: i64) {
    sequence_enrollment::Entity::update_many()
        .col_expr(
            sequence_enrollment::Column::Status,
            sea_orm::sea_query::Expr::value("completed"),
        )
        .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
        .exec(db)
        .await
        .expect("finish");
}

#[tokio::test]
async fn a_score_entering_its_band_enrolls_once_per_entry() {
    let db = database().await;
    let who = owner(&db, "Scores").await;
    let ctx = context(&db);
    let ada = contact(&db, &who, "ada@example.com").await;
    let grace = contact(&db, &who, "grace@example.com").await;
    let version = active_model(&db, &who, ModelKind::LeadScore).await;
    let hot = triggered(
        &db,
        &who,
        "Hot leads",
        json!([{"kind": "score", "model": "lead_score", "atLeast": 70}]),
    )
    .await;
    let scan = || triggers::scan(&ctx, Utc::now(), false);

    // A first score already in the band is an entry; one below is not.
    score(
        &db,
        &who,
        ModelKind::LeadScore,
        version,
        &[(ada, 60.0), (grace, 75.0)],
    )
    .await;
    scan().await.expect("scan");
    assert_eq!(enrollments(&db, hot, &[ada, grace]).await, [0, 1]);
    finish_all(&db, hot).await;

    // Ada crosses; Grace stays above and is not enrolled again, though she could be.
    score(
        &db,
        &who,
        ModelKind::LeadScore,
        version,
        &[(ada, 72.0), (grace, 80.0)],
    )
    .await;
    scan().await.expect("scan");
    assert_eq!(enrollments(&db, hot, &[ada, grace]).await, [1, 1]);
    finish_all(&db, hot).await;

    // Grace leaves the band and comes back: a new entry.
    score(&db, &who, ModelKind::LeadScore, version, &[(grace, 50.0)]).await;
    scan().await.expect("scan");
    score(&db, &who, ModelKind::LeadScore, version, &[(grace, 71.0)]).await;
    scan().await.expect("scan");
    assert_eq!(enrollments(&db, hot, &[ada, grace]).await, [1, 2]);

    // Scanning again reads nothing new.
    scan().await.expect("scan");
    assert_eq!(enrollments(&db, hot, &[ada, grace]).await, [1, 2]);
}

#[tokio::test]
async fn a_churn_level_turning_high_enrolls_and_segments_see_it() {
    let db = database().await;
    let who = owner(&db, "Churn").await;
    let ctx = context(&db);
    let ada = contact(&db, &who, "ada@example.com").await;
    let grace = contact(&db, &who, "grace@example.com").await;
    let version = active_model(&db, &who, ModelKind::Churn).await;
    let win_back = triggered(
        &db,
        &who,
        "Win back",
        json!([{"kind": "churnLevel", "to": "high"}]),
    )
    .await;
    let high = || async {
        let condition =
            ContactFilter::parse("filter", &json!({"churnRisk": {"level": {"eq": "HIGH"}}}))
                .expect("filter")
                .condition(Evaluation::new(who.workspace_id, Utc::now()))
                .expect("condition");
        let mut ids: Vec<i64> =
            records::scoped::<contact::Entity>(who.workspace_id, Deleted::Exclude)
                .select_only()
                .column(contact::Column::Id)
                .filter(condition)
                .into_tuple()
                .all(&db)
                .await
                .expect("members");
        ids.sort();
        ids
    };

    // One-time buyers' churn risk is the classifier's score.
    score(
        &db,
        &who,
        ModelKind::Churn,
        version,
        &[(ada, 85.0), (grace, 20.0)],
    )
    .await;
    insights::refresh_contacts(&db, who.workspace_id, None)
        .await
        .expect("refresh");
    let stored = contact_insight::Entity::find_by_id(ada)
        .one(&db)
        .await
        .expect("read")
        .expect("ada has insights");
    assert_eq!(stored.churn_level.as_deref(), Some("high"));
    assert_eq!(
        stored.churn_method.as_deref(),
        Some("engagement_classifier")
    );
    assert!((stored.churn_risk.expect("risk") - 0.85).abs() < 1e-9);
    assert_eq!(high().await, [ada]);
    triggers::scan(&ctx, Utc::now(), false).await.expect("scan");
    assert_eq!(enrollments(&db, win_back, &[ada, grace]).await, [1, 0]);

    // Ada recovers, Grace slips: the filter and the trigger follow the refresh.
    finish_all(&db, win_back).await;
    score(
        &db,
        &who,
        ModelKind::Churn,
        version,
        &[(ada, 10.0), (grace, 90.0)],
    )
    .await;
    insights::refresh_contacts(&db, who.workspace_id, Some(&[ada, grace]))
        .await
        .expect("refresh");
    assert_eq!(high().await, [grace]);
    triggers::scan(&ctx, Utc::now(), false).await.expect("scan");
    assert_eq!(enrollments(&db, win_back, &[ada, grace]).await, [1, 1]);

    // An unchanged level logs nothing, so nobody is enrolled again.
    insights::refresh_contacts(&db, who.workspace_id, None)
        .await
        .expect("refresh");
    triggers::scan(&ctx, Utc::now(), false).await.expect("scan");
    assert_eq!(enrollments(&db, win_back, &[ada, grace]).await, [1, 1]);
}

#[tokio::test]
async fn score_triggers_are_checked_on_save() {
    let db = database().await;
    let who = owner(&db, "Checks").await;
    let clock = ManualClock::new();
    for (trigger, expected) in [
        (
            json!({"kind": "score", "model": "win_probability", "atLeast": 70}),
            "is not one of lead_score",
        ),
        (
            json!({"kind": "score", "model": "lead_score"}),
            "needs atLeast, below or grade",
        ),
        (
            json!({"kind": "score", "model": "lead_score", "atLeast": 120}),
            "between 0 and 100",
        ),
        (
            json!({"kind": "score", "model": "lead_score", "atLeast": 80, "below": 20}),
            "atLeast must be below",
        ),
        (
            json!({"kind": "score", "model": "lead_score", "grade": "Z"}),
            "not one of A, B, C, D",
        ),
        (
            json!({"kind": "score", "plugin": "fit", "grade": "A"}),
            "plugin scores have no grade",
        ),
        (
            json!({"kind": "score", "model": "lead_score", "plugin": "fit", "atLeast": 1}),
            "either a model or a plugin",
        ),
        (
            json!({"kind": "churnLevel", "to": "extreme"}),
            "churn level trigger",
        ),
        (
            json!({"kind": "rfmSegment", "to": "whales"}),
            "RFM segment trigger",
        ),
    ] {
        let refused = sequences::create(
            &db,
            &who,
            &clock,
            &json!({
                "name": "Checked",
                "fromEmail": "hello@shop.example",
                "triggers": [trigger],
                "start": "tag",
                "steps": [{"id": "tag", "kind": "updateContact", "addTags": ["x"]}]
            }),
        )
        .await;
        let Err(e) = refused else {
            panic!("{trigger} was accepted")
        };
        let message = format!("{e:?}");
        assert!(message.contains(expected), "{trigger}: {message}");
    }
}

#[tokio::test]
async fn the_score_history_records_changes_only() {
    let db = database().await;
    let who = owner(&db, "History").await;
    let ada = contact(&db, &who, "ada@history.example").await;
    let version = active_model(&db, &who, ModelKind::LeadScore).await;
    let rows = || async {
        rapport_schema::score_history::Entity::find()
            .filter(rapport_schema::score_history::Column::SubjectId.eq(ada))
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.score, h.previous_score))
            .collect::<Vec<_>>()
    };
    for s in [40.0, 40.0, 55.0, 55.0] {
        score(&db, &who, ModelKind::LeadScore, version, &[(ada, s)]).await;
    }
    assert_eq!(rows().await, [(40.0, None), (55.0, Some(40.0))]);
}
