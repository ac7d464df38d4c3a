//! Periodic work shared by processes: each due run goes to one of them, a dead holder's run
//! is taken over after its lease, a failed run is retried.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rapport_engine::platform::periodic::{claim, extend, finish, held, postpone, release, slots};

use super::database as db;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

const LEASE: Duration = Duration::from_secs(600);

#[tokio::test]
async fn a_due_run_goes_to_one_process() {
    let db = db().await;
    // Not due yet: nobody takes it.
    assert_eq!(
        claim(&db, "retrain", "a", at(0), LEASE, at(10))
            .await
            .unwrap(),
        None
    );
    let a = claim(&db, "retrain", "a", at(10), LEASE, at(10))
        .await
        .unwrap();
    let b = claim(&db, "retrain", "b", at(10), LEASE, at(10))
        .await
        .unwrap();
    let a = a.expect("due at 10");
    assert_eq!(b, None, "held by a");
    assert_eq!(a.covered_until, None);
    assert!(finish(&db, &a, at(12), at(100), at(10)).await.unwrap());
    // Done: not due again until 100, for anyone.
    assert_eq!(
        claim(&db, "retrain", "b", at(50), LEASE, at(10))
            .await
            .unwrap(),
        None
    );
    let b = claim(&db, "retrain", "b", at(100), LEASE, at(10))
        .await
        .unwrap()
        .expect("due at 100");
    assert_eq!(b.covered_until, Some(at(10)));
    let row = &slots(&db).await.unwrap()[0];
    assert_eq!((row.runs, row.holder.as_deref()), (1, Some("b")));
}

#[tokio::test]
async fn a_dead_holders_run_is_taken_over_once_its_lease_ends() {
    let db = db().await;
    let a = claim(&db, "changes", "a", at(0), LEASE, at(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        claim(&db, "changes", "b", at(599), LEASE, at(0))
            .await
            .unwrap(),
        None
    );
    let b = claim(&db, "changes", "b", at(600), LEASE, at(0))
        .await
        .unwrap()
        .expect("a's lease ran out");
    // a comes back late: its finish no longer counts, b's does.
    assert!(!finish(&db, &a, at(601), at(660), at(0)).await.unwrap());
    assert!(finish(&db, &b, at(602), at(662), at(600)).await.unwrap());
    let row = &slots(&db).await.unwrap()[0];
    assert_eq!((row.runs, row.covered_until), (1, Some(at(600))));
}

#[tokio::test]
async fn a_failed_run_is_retried_and_says_why() {
    let db = db().await;
    let a = claim(&db, "rescore", "a", at(0), LEASE, at(0))
        .await
        .unwrap()
        .unwrap();
    release(&db, &a, at(60), "the database went away")
        .await
        .unwrap();
    let row = &slots(&db).await.unwrap()[0];
    assert_eq!(row.last_error.as_deref(), Some("the database went away"));
    assert_eq!(row.failures, 1);
    assert_eq!(
        claim(&db, "rescore", "b", at(30), LEASE, at(0))
            .await
            .unwrap(),
        None
    );
    let b = claim(&db, "rescore", "b", at(60), LEASE, at(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        b.failures, 1,
        "the next taker knows to wait longer if it fails too"
    );
    assert!(finish(&db, &b, at(61), at(3600), at(60)).await.unwrap());
    let row = &slots(&db).await.unwrap()[0];
    assert_eq!((row.last_error.as_deref(), row.failures), (None, 0));
    // A retrain that rescored everyone pushes the next rescore back; never forward.
    postpone(&db, "rescore", at(7200)).await.unwrap();
    postpone(&db, "rescore", at(100)).await.unwrap();
    assert_eq!(slots(&db).await.unwrap()[0].due_at, at(7200));
}

#[tokio::test]
async fn a_holder_at_work_keeps_its_run() {
    let db = db().await;
    let a = claim(&db, "retrain", "a", at(0), LEASE, at(0))
        .await
        .unwrap()
        .unwrap();
    // Still retraining at 500: a extends its lease, so b cannot take the run at 600.
    assert!(extend(&db, &a, at(1100)).await.unwrap());
    assert!(held(&db, "retrain", at(700)).await.unwrap());
    assert_eq!(
        claim(&db, "retrain", "b", at(600), LEASE, at(0))
            .await
            .unwrap(),
        None
    );
    assert!(
        !held(&db, "retrain", at(1100)).await.unwrap(),
        "the lease ran out"
    );
    assert!(
        !held(&db, "rescore", at(0)).await.unwrap(),
        "never asked for"
    );
}
