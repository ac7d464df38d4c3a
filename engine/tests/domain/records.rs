//! Soft delete: what the trash hides, who may empty or restore it.

use rapport_engine::EngineError;
use rapport_engine::platform::records::{self, Deleted};
use rapport_schema::contact;
use sea_orm::{EntityTrait, PaginatorTrait, QueryFilter};

use crate::{contact, database, owner};

#[tokio::test]
async fn a_deleted_record_is_hidden_until_restored_and_only_its_workspace_can_touch_it() {
    let db = database().await;
    let who = owner(&db, "Trash").await;
    let stranger = owner(&db, "Elsewhere").await;
    let id = contact(&db, &who, "ada@example.com").await;

    // Another workspace cannot see, delete or restore it: ids are not secret.
    for attempt in [
        records::soft_delete::<contact::Entity>(&db, stranger.workspace_id, id).await,
        records::restore::<contact::Entity>(&db, stranger.workspace_id, id).await,
        records::hard_delete::<contact::Entity>(&db, stranger.workspace_id, id).await,
    ] {
        assert!(
            matches!(attempt, Err(EngineError::NotFound { .. })),
            "{attempt:?}"
        );
    }

    records::soft_delete::<contact::Entity>(&db, who.workspace_id, id)
        .await
        .expect("soft delete");
    assert!(matches!(
        records::get::<contact::Entity>(&db, who.workspace_id, id).await,
        Err(EngineError::NotFound { .. })
    ));
    let listed = records::scoped::<contact::Entity>(who.workspace_id, Deleted::Exclude)
        .count(&db)
        .await
        .expect("count");
    assert_eq!(listed, 0, "a deleted contact is not listed");
    let trash = records::scoped::<contact::Entity>(who.workspace_id, Deleted::Only)
        .count(&db)
        .await
        .expect("count");
    assert_eq!(trash, 1, "it is in the trash");
    // Deleting twice is not found (nothing live by that id), not a silent success.
    assert!(matches!(
        records::soft_delete::<contact::Entity>(&db, who.workspace_id, id).await,
        Err(EngineError::NotFound { .. })
    ));

    records::restore::<contact::Entity>(&db, who.workspace_id, id)
        .await
        .expect("restore");
    let back = records::get::<contact::Entity>(&db, who.workspace_id, id)
        .await
        .expect("restored");
    assert!(back.deleted_at.is_none());
    assert!(matches!(
        records::restore::<contact::Entity>(&db, who.workspace_id, id).await,
        Err(EngineError::NotFound { .. })
    ));

    records::hard_delete::<contact::Entity>(&db, who.workspace_id, id)
        .await
        .expect("hard delete");
    let left = contact::Entity::find()
        .filter(sea_orm::ColumnTrait::eq(&contact::Column::Id, id))
        .count(&db)
        .await
        .expect("count");
    assert_eq!(left, 0);
}
