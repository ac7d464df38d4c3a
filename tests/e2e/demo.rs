//! The demo a newcomer first sees: seeded data plus the showcase (trained models,
//! segments over scores, an A/B campaign sent and answered, a sequence in progress, a
//! sign-up form), read back over GraphQL and checked against the raw rows.

use rapport_engine::demo;
use rapport_schema as s;
use rapport_tests::TestApp;
use rapport_tests::both_backends;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use std::collections::HashSet;

both_backends!(the_demo_shows_a_crm_in_use);

async fn the_demo_shows_a_crm_in_use(app: TestApp) {
    let created = demo::seed(&app.db, "Demo", &demo::DemoSize::for_contacts(600), &|_| {})
        .await
        .expect("seed");
    let ws = created.workspace.id;
    let shown = demo::showcase::build(&app.db, ws).await.expect("showcase");
    let key = created.key.key;
    let data = app
        .ok(
            &key,
            "{ segments { id name preview(sample: 0) { count } } customFields { key kind } models(kind: LEAD_SCORE) { status } captureForms { url doubleOptIn topic { key } } }",
            json!({}),
        )
        .await;
    let count = |name: &str| -> i64 {
        data["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("segment {name} missing: {data}"))["preview"]["count"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        data["customFields"],
        json!([{"key": "plan", "kind": "ENUM"}, {"key": "seats", "kind": "NUMBER"}])
    );
    assert!(
        data["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["status"] == "ACTIVE"),
        "a trained, active lead-score model: {data}"
    );
    assert_eq!(data["captureForms"][0]["topic"]["key"], "newsletter");

    // Segments equal what the raw rows say.
    let contacts = s::contact::Entity::find()
        .filter(s::contact::Column::WorkspaceId.eq(ws))
        .all(&app.db)
        .await
        .unwrap();
    let subscribed: HashSet<i64> = s::consent_event::Entity::find()
        .filter(s::consent_event::Column::WorkspaceId.eq(ws))
        .filter(s::consent_event::Column::Status.eq("granted"))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.contact_id)
        .collect();
    assert!(!subscribed.is_empty());
    assert_eq!(count("Newsletter subscribers"), subscribed.len() as i64);
    let grade_a: HashSet<i64> = s::score::Entity::find()
        .filter(s::score::Column::WorkspaceId.eq(ws))
        .filter(s::score::Column::Kind.eq("lead_score"))
        .filter(s::score::Column::Grade.eq("A"))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.subject_id)
        .collect();
    let hot = contacts
        .iter()
        .filter(|c| grade_a.contains(&c.id))
        .filter(|c| ["lead", "qualified", "opportunity"].contains(&c.lifecycle_stage.as_str()))
        .count();
    assert!(hot > 0, "the lead score grades some open leads A");
    assert_eq!(count("Hot leads"), hot as i64);
    let big = contacts
        .iter()
        .filter(|c| c.attributes["seats"].as_f64().is_some_and(|n| n >= 150.0))
        .count();
    assert_eq!(count("Big accounts"), big as i64);
    assert!(
        count("Champions") > 0 && count("Customers at risk") > 0,
        "{data}"
    );

    // The campaign: sent to every subscriber, the A/B winner picked, answered.
    let c = app
        .ok(
            &key,
            "query($id: ID!) { campaign(id: $id) { status winnerVariantId variants { id } stats { recipients sent pending uniqueOpens uniqueClicks } variantStats { variantId sent uniqueOpens } } }",
            json!({"id": shown.campaign_id.to_string()}),
        )
        .await["campaign"]
        .clone();
    assert_eq!(c["status"], "SENT", "{c}");
    assert_eq!(c["stats"]["recipients"], subscribed.len());
    assert_eq!(c["stats"]["sent"], subscribed.len(), "{c}");
    assert_eq!(c["stats"]["pending"], 0);
    let opens = c["stats"]["uniqueOpens"].as_i64().unwrap();
    assert!(
        opens > 0 && c["stats"]["uniqueClicks"].as_i64().unwrap() > 0,
        "{c}"
    );
    let variants: Vec<&Value> = c["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["id"])
        .collect();
    assert!(variants.contains(&&c["winnerVariantId"]), "{c}");
    let per_variant: i64 = c["variantStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sent"].as_i64().unwrap())
        .sum();
    assert_eq!(
        per_variant,
        subscribed.len() as i64,
        "every message has its variant"
    );
    // Opens are on the contacts' timelines as events.
    let opened_events = s::event::Entity::find()
        .filter(s::event::Column::WorkspaceId.eq(ws))
        .filter(s::event::Column::EventType.eq("email_opened"))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.properties["campaign_id"] == json!(shown.campaign_id))
        .count();
    assert_eq!(opened_events as i64, opens);

    // The sequence: active, its enrollments at more than one step, each email once.
    let seq = app
        .ok(
            &key,
            "query($id: ID!) { sequence(id: $id) { status enrollments { status currentStep contact { id } } stats { step current emailsSent } } }",
            json!({"id": shown.sequence_id.to_string()}),
        )
        .await["sequence"]
        .clone();
    assert_eq!(seq["status"], "ACTIVE");
    let enrollments = seq["enrollments"].as_array().unwrap();
    assert!(!enrollments.is_empty(), "{seq}");
    let steps: HashSet<&str> = enrollments
        .iter()
        .filter(|e| e["status"] == "ACTIVE")
        .map(|e| e["currentStep"].as_str().unwrap())
        .collect();
    assert!(steps.len() >= 2, "enrollments at several steps: {seq}");
    for e in enrollments {
        let id: i64 = e["contact"]["id"].as_str().unwrap().parse().unwrap();
        assert!(subscribed.contains(&id), "only subscribers are enrolled");
    }
    let sent_rows = s::sequence_message::Entity::find()
        .filter(s::sequence_message::Column::SequenceId.eq(shown.sequence_id))
        .filter(s::sequence_message::Column::State.eq("sent"))
        .all(&app.db)
        .await
        .unwrap()
        .len();
    let sent_stat: i64 = seq["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["emailsSent"].as_i64().unwrap())
        .sum();
    assert_eq!(sent_stat, sent_rows as i64);
    assert!(sent_rows > 0);
}
