//! Segments: the filter is checked on save and evaluated on use, inside the engine.

use rapport_engine::EngineError;
use rapport_engine::crm::contacts;
use rapport_engine::engagement::audiences::{self, SegmentInput};
use rapport_engine::platform::records::{self, Deleted};
use rapport_engine::values::{LifecycleStage, Patch};
use rapport_schema::{contact, segment};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::json;

use crate::{contact, database, owner};

#[tokio::test]
async fn a_segment_is_checked_on_save_and_its_members_read_in_the_engine() {
    let db = database().await;
    let who = owner(&db, "Segments").await;
    let ada = contact(&db, &who, "ada@example.com").await;
    let grace = contacts::create(
        &db,
        &who,
        contacts::ContactInput {
            email: Patch::Set("grace@example.com".into()),
            lifecycle_stage: Some(LifecycleStage::Customer),
            tags: Some(vec!["vip".into()]),
            ..Default::default()
        },
    )
    .await
    .expect("customer")
    .id;

    // A filter that does not parse is refused and nothing is stored.
    let bad = audiences::create(
        &db,
        &who,
        SegmentInput {
            name: Some("Broken".into()),
            filter: Some(json!({"lifecycleStage": {"eq": "BOSS"}})),
            ..Default::default()
        },
    )
    .await;
    match bad {
        Err(EngineError::Validation { field, .. }) => assert_eq!(field, "filter.lifecycleStage.eq"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(
        segment::Entity::find().all(&db).await.expect("rows").len(),
        0
    );

    let vip = audiences::create(
        &db,
        &who,
        SegmentInput {
            name: Some("VIP customers".into()),
            filter: Some(json!({"lifecycleStage": {"eq": "CUSTOMER"}, "tags": {"has": "vip"}})),
            ..Default::default()
        },
    )
    .await
    .expect("segment");
    let members: Vec<i64> = records::scoped::<contact::Entity>(who.workspace_id, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .filter(audiences::members(&vip).expect("condition"))
        .into_tuple()
        .all(&db)
        .await
        .expect("members");
    assert_eq!(members, vec![grace]);
    assert!(!members.contains(&ada));

    // A saved filter that no longer reads (written by hand, or by an older version) is a
    // validation error naming the segment, not a crash.
    let mut row: segment::ActiveModel = vip.clone().into();
    row.filter = Set(json!({"and": [{"nope": 1}]}));
    let damaged = row.update(&db).await.expect("damage");
    match audiences::members(&damaged) {
        Err(EngineError::Validation { field, message }) => {
            assert_eq!(field, "segment.filter.and[0].nope");
            assert!(
                message.contains(&format!("segment {}", vip.id)),
                "{message}"
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}
