//! The audit log on SQLite: a change is recorded with its caller only within a request's
//! trail and while a mutation is named, in the change's own transaction (a rollback takes
//! the row with it), and erasure keeps a person's rows without their values.

use rapport_engine::contact_data;
use rapport_engine::platform::audit::{self, Actor};
use rapport_engine::platform::outbox::{self, Subject};
use rapport_engine::values::WebhookEventType;
use rapport_schema::audit_event;
use sea_orm::{EntityTrait, PaginatorTrait, TransactionTrait};
use serde_json::json;

use super::{contact, database, owner};

fn caller() -> Actor {
    Actor {
        api_key_id: Some(7),
        ..Actor::from_request(Some("198.51.100.4".into()), Some("test"))
    }
}

#[tokio::test]
async fn changes_are_recorded_only_within_a_named_mutation() {
    let db = database().await;
    let who = owner(&db, "Trail").await;
    contact(&db, &who, "outside@trail.example").await;
    audit::within(caller(), async {
        contact(&db, &who, "unnamed@trail.example").await;
        audit::begin("createContact");
        contact(&db, &who, "named@trail.example").await;
        assert_eq!(audit::end(), 1);
    })
    .await;
    let rows = audit_event::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let row = &rows[0];
    assert_eq!(row.operation, "createContact");
    assert_eq!(row.action.as_deref(), Some("contact.created"));
    assert_eq!(row.api_key_id, Some(7));
    assert_eq!(row.ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(row.object_type.as_deref(), Some("Contact"));
    assert_eq!(
        row.changes.as_ref().unwrap()["email"],
        json!({"new": "named@trail.example"})
    );
}

#[tokio::test]
async fn a_change_that_rolls_back_leaves_no_row() {
    let db = database().await;
    let who = owner(&db, "Rollback").await;
    audit::within(caller(), async {
        audit::begin("updateContact");
        let tx = db.begin().await.unwrap();
        outbox::created(
            &tx,
            who.workspace_id,
            WebhookEventType::ContactCreated,
            Subject::contact(1),
            &json!({"id": 1, "email": "gone@rollback.example"}),
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        audit::end();
    })
    .await;
    assert_eq!(audit_event::Entity::find().count(&db).await.unwrap(), 0);
}

#[tokio::test]
async fn erasure_keeps_the_rows_without_the_values() {
    let db = database().await;
    let who = owner(&db, "Erased").await;
    let id = audit::within(caller(), async {
        audit::begin("createContact");
        let id = contact(&db, &who, "erase.me@erased.example").await;
        audit::end();
        audit::begin("deleteContact");
        contact_data::erase(&db, &who, id).await.unwrap();
        audit::end();
        id
    })
    .await;
    let rows = audit_event::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0].changes, None, "the creation's values are gone");
    assert_eq!(rows[1].operation, "deleteContact");
    assert_eq!(rows[1].object_id.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(rows[1].changes.as_ref().unwrap()["erased"], true);
}
