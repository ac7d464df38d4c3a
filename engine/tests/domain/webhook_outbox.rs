//! The webhook outbox on SQLite: events are written only for listening endpoints, a
//! change's events are written with it, and pruning keeps whatever is still owed.

use rapport_engine::integrations::webhooks::{self, EndpointInput, Settings, delivery};
use rapport_schema::{webhook_delivery, webhook_event};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};

use super::{contact, database, owner};

async fn endpoint(
    db: &sea_orm::DatabaseConnection,
    who: &rapport_engine::platform::auth::Principal,
) -> i64 {
    let mut settings = Settings::new();
    settings.allow_private = true;
    webhooks::create(
        db,
        who,
        &settings,
        EndpointInput {
            url: Some("http://127.0.0.1:9/hook".into()),
            events: Some(vec!["contact.created".into()]),
            ..Default::default()
        },
    )
    .await
    .expect("endpoint")
    .endpoint
    .id
}

#[tokio::test]
async fn nothing_is_written_until_an_endpoint_listens() {
    let db = database().await;
    let who = owner(&db, "Quiet").await;
    contact(&db, &who, "a@quiet.example").await;
    assert_eq!(webhook_event::Entity::find().count(&db).await.unwrap(), 0);
    endpoint(&db, &who).await;
    contact(&db, &who, "b@quiet.example").await;
    assert_eq!(webhook_event::Entity::find().count(&db).await.unwrap(), 1);
    assert_eq!(
        webhook_delivery::Entity::find().count(&db).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn pruning_keeps_what_is_still_owed_and_what_is_recent() {
    let db = database().await;
    let who = owner(&db, "Pruned").await;
    endpoint(&db, &who).await;
    for n in 0..3 {
        contact(&db, &who, &format!("p{n}@pruned.example")).await;
    }
    let events = webhook_event::Entity::find().all(&db).await.unwrap();
    let deliveries = webhook_delivery::Entity::find().all(&db).await.unwrap();
    let old = chrono::Utc::now() - chrono::Duration::days(40);
    // Two old events, one delivered and one still pending; the third is recent.
    for e in &events[..2] {
        let mut am: webhook_event::ActiveModel = e.clone().into();
        am.created_at = Set(old);
        am.update(&db).await.unwrap();
    }
    let mut am: webhook_delivery::ActiveModel = deliveries
        .iter()
        .find(|d| d.event_id == events[0].id)
        .unwrap()
        .clone()
        .into();
    am.state = Set(delivery::State::Delivered.as_str().into());
    am.update(&db).await.unwrap();

    let pruned = delivery::prune(&db, chrono::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<i64> = webhook_event::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec![events[1].id, events[2].id]);
    assert_eq!(
        webhook_delivery::Entity::find().count(&db).await.unwrap(),
        2
    );
}
