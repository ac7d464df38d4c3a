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
        .filter(audiences::members(&vip, chrono::Utc::now()).expect("condition"))
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
    match audiences::members(&damaged, chrono::Utc::now()) {
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

/// Runs raw SQL; these tests fabricate the rows other rooms would have written.
async fn exec(db: &sea_orm::DatabaseConnection, sql: &str) {
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(sql).await.expect(sql);
}

/// The contacts of the workspace that `filter` holds now, by id.
async fn holds(db: &sea_orm::DatabaseConnection, ws: i64, filter: serde_json::Value) -> Vec<i64> {
    use rapport_engine::crm::filters::{ContactFilter, Evaluation, Filter};
    use sea_orm::QueryOrder;
    let condition = ContactFilter::parse("filter", &filter)
        .expect("parse")
        .condition(Evaluation::new(ws, chrono::Utc::now()))
        .expect("compile");
    records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .filter(condition)
        .order_by_asc(contact::Column::Id)
        .into_tuple()
        .all(db)
        .await
        .expect("members")
}

#[tokio::test]
async fn scores_opens_and_orders_select_the_contacts_the_raw_rows_say() {
    let db = database().await;
    // The rows below stand for what models, campaigns and orders would have written;
    // their parents (model versions, campaigns) are not the subject here.
    exec(&db, "PRAGMA foreign_keys = OFF").await;
    let who = owner(&db, "Behaviour").await;
    let ws = who.workspace_id;
    let now = chrono::Utc::now();
    // Written as sqlx writes a time to SQLite, so text comparisons agree.
    let days = |d: i64| {
        (now - chrono::Duration::days(d)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
    };
    // (grade, opened campaign, order placed days ago and its status, events of type "visit")
    let people = [
        ("A", Some(1), None, 0),
        ("A", Some(1), Some((10, "paid")), 1),
        ("A", Some(1), Some((40, "paid")), 2),
        ("B", Some(1), None, 3),
        ("A", None, None, 0),
        ("A", Some(2), None, 0),
        ("A", Some(1), Some((10, "cancelled")), 0),
    ];
    let mut ids = Vec::new();
    for (i, (grade, opened, order, visits)) in people.iter().enumerate() {
        let id = contact(&db, &who, &format!("p{i}@example.com")).await;
        ids.push(id);
        exec(&db, &format!(
            "INSERT INTO scores (workspace_id, kind, subject_id, model_version_id, score, grade, reasons, computed_at) \
             VALUES ({ws}, 'lead_score', {id}, 1, 50, '{grade}', '[]', '{}')", days(0))).await;
        let (campaign, opened_at) = match opened {
            Some(c) => (*c, format!("'{}'", days(2))),
            None => (1, "NULL".to_string()),
        };
        exec(&db, &format!(
            "INSERT INTO campaign_messages (workspace_id, campaign_id, contact_id, state, opened_at, opens, clicks, queued_at) \
             VALUES ({ws}, {campaign}, {id}, 'sent', {opened_at}, 0, 0, '{}')", days(3))).await;
        if let Some((ago, status)) = order {
            exec(&db, &format!(
                "INSERT INTO orders (workspace_id, contact_id, placed_at, status, currency, total_minor, created_at, updated_at) \
                 VALUES ({ws}, {id}, '{}', '{status}', 'EUR', 1000, '{}', '{}')", days(*ago), days(*ago), days(*ago))).await;
        }
        for _ in 0..*visits {
            exec(&db, &format!(
                "INSERT INTO events (workspace_id, contact_id, event_type, properties, occurred_at) \
                 VALUES ({ws}, {id}, 'visit', '{{}}', '{}')", days(1))).await;
        }
    }
    let expected: Vec<i64> = people
        .iter()
        .zip(&ids)
        .filter(|((grade, opened, order, _), _)| {
            *grade == "A"
                && *opened == Some(1)
                && !order.is_some_and(|(ago, status)| ago <= 30 && status != "cancelled")
        })
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(expected, vec![ids[0], ids[2], ids[6]]);
    let grade_a_opened_no_recent_order = json!({
        "leadScore": {"grade": {"eq": "A"}},
        "engagement": {"opened": {"campaignId": "1"}},
        "orders": {"withinDays": 30, "count": {"eq": 0}}
    });
    assert_eq!(
        holds(&db, ws, grade_a_opened_no_recent_order).await,
        expected
    );

    // Counts: two visits or more; no visit at all (a count of zero matches contacts with
    // no rows too).
    assert_eq!(
        holds(
            &db,
            ws,
            json!({"events": [{"type": "visit", "count": {"gte": 2}}]})
        )
        .await,
        vec![ids[2], ids[3]]
    );
    assert_eq!(
        holds(
            &db,
            ws,
            json!({"events": [{"type": "visit", "count": {"lt": 1}}]})
        )
        .await,
        vec![ids[0], ids[4], ids[5], ids[6]]
    );
    // Any campaign's opens, and a bad number of days is refused naming the field.
    assert_eq!(
        holds(
            &db,
            ws,
            json!({"engagement": {"opened": {"withinDays": 7}}})
        )
        .await
        .len(),
        6
    );
    match <rapport_engine::crm::filters::ContactFilter as rapport_engine::crm::filters::Filter>::parse(
        "filter",
        &json!({"orders": {"withinDays": 0}}),
    ) {
        Err(EngineError::Validation { field, .. }) => assert_eq!(field, "filter.orders.withinDays"),
        other => panic!("expected a validation error, got {other:?}"),
    }

    // Consent: the latest record per purpose decides.
    for (id, statuses) in [
        (ids[0], ["granted", "withdrawn"]),
        (ids[1], ["withdrawn", "granted"]),
    ] {
        for status in statuses {
            exec(&db, &format!(
                "INSERT INTO consent_events (workspace_id, contact_id, channel, purpose, status, lawful_basis, recorded_at) \
                 VALUES ({ws}, {id}, 'email', 'marketing', '{status}', 'consent', '{}')", days(1))).await;
        }
    }
    assert_eq!(
        holds(
            &db,
            ws,
            json!({"consent": [{"purpose": "MARKETING", "status": {"eq": "GRANTED"}}]})
        )
        .await,
        vec![ids[1]]
    );
}
