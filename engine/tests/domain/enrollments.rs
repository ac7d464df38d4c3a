//! Enrollment rules: only an active sequence enrolls; a contact is in a sequence once at a
//! time; re-entry and the enrollment limit decide who may enter again.

use rapport_engine::EngineError;
use rapport_engine::clock::ManualClock;
use rapport_engine::engagement::sequences;
use rapport_engine::platform::auth::Principal;
use rapport_engine::values::Scope;
use rapport_schema::sequence_enrollment;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::{contact, database, owner};

#[tokio::test]
async fn reentry_and_the_enrollment_limit_decide_who_enters_again() {
    let db = database().await;
    let who = owner(&db, "Drip").await;
    let clock = ManualClock::new();
    let ada = contact(&db, &who, "ada@example.com").await;
    let grace = contact(&db, &who, "grace@example.com").await;
    let definition = |name: &str, reentry: bool| {
        json!({
            "name": name,
            "fromEmail": "hello@shop.example",
            "allowReentry": reentry,
            "maxEnrollments": 2,
            "start": "tag",
            "steps": [{"id": "tag", "kind": "updateContact", "addTags": ["welcomed"]}]
        })
    };
    let once = sequences::create(&db, &who, &clock, &definition("Once", false))
        .await
        .expect("create");

    // A draft enrolls nobody.
    let refused = sequences::enroll(&db, &who, &clock, once.sequence.id, &[ada]).await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(_))),
        "{refused:?}"
    );

    sequences::activate(&db, &who, &clock, once.sequence.id)
        .await
        .expect("activate");
    // A read key cannot enroll.
    let reader = Principal {
        scopes: vec![Scope::Read],
        ..who.clone()
    };
    assert!(matches!(
        sequences::enroll(&db, &reader, &clock, once.sequence.id, &[ada]).await,
        Err(EngineError::Forbidden(_))
    ));
    // A contact of another workspace is not found, and nobody is enrolled.
    let stranger = owner(&db, "Elsewhere").await;
    let theirs = contact(&db, &stranger, "them@example.com").await;
    assert!(matches!(
        sequences::enroll(&db, &who, &clock, once.sequence.id, &[ada, theirs]).await,
        Err(EngineError::NotFound { .. })
    ));

    // Twice in one call, or again while active: one enrollment.
    let first = sequences::enroll(&db, &who, &clock, once.sequence.id, &[ada, ada, grace])
        .await
        .expect("enroll");
    assert_eq!(first.enrollments.len(), 2);
    let again = sequences::enroll(&db, &who, &clock, once.sequence.id, &[ada])
        .await
        .expect("enroll again");
    assert!(again.enrollments.is_empty());
    assert_eq!(again.skipped, vec![(ada, "already enrolled".to_string())]);

    // Once finished, re-entry off keeps the contact out.
    finish_all(&db, once.sequence.id).await;
    let after = sequences::enroll(&db, &who, &clock, once.sequence.id, &[ada])
        .await
        .expect("enroll after");
    assert_eq!(
        after.skipped,
        vec![(ada, "was enrolled before and re-entry is off".to_string())]
    );

    // With re-entry on, the limit of two enrollments holds.
    let twice = sequences::create(&db, &who, &clock, &definition("Twice", true))
        .await
        .expect("create");
    sequences::activate(&db, &who, &clock, twice.sequence.id)
        .await
        .expect("activate");
    for round in 0..2 {
        let r = sequences::enroll(&db, &who, &clock, twice.sequence.id, &[grace])
            .await
            .expect("enroll");
        assert_eq!(r.enrollments.len(), 1, "round {round} enters");
        finish_all(&db, twice.sequence.id).await;
    }
    let third = sequences::enroll(&db, &who, &clock, twice.sequence.id, &[grace])
        .await
        .expect("third");
    assert_eq!(
        third.skipped,
        vec![(grace, "enrolled too many times".to_string())]
    );
    let rows = sequence_enrollment::Entity::find()
        .filter(sequence_enrollment::Column::SequenceId.eq(twice.sequence.id))
        .filter(sequence_enrollment::Column::ContactId.eq(grace))
        .all(&db)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 3, "the refused third is recorded as exited");
    assert!(
        rows.iter()
            .any(|r| r.exit_reason.as_deref() == Some("enrolled too many times"))
    );
}

/// Marks every enrollment of a sequence completed, as the runner would at its last step.
async fn finish_all(db: &sea_orm::DatabaseConnection, sequence_id: i64) {
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
